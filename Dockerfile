# izgens as one container, for hosts that run containers (Railway: see railway.json and
# docs/deploy.md "Container (Railway)"): every HTTP function under /<name>, /health, and the
# cleanup schedule in-process (izgens.container).
FROM python:3.12-slim

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# The project's runtime dependencies only (no dev/test extras), plus the ASGI server, which
# the library does not depend on (Lambda needs none). pip precompiles the .pyc files here,
# as root: the app user cannot write to site-packages, so nothing compiles at start.
COPY pyproject.toml README.md /tmp/izgens/
COPY shared /tmp/izgens/shared
COPY functions /tmp/izgens/functions
COPY local /tmp/izgens/local
RUN pip install /tmp/izgens "uvicorn>=0.30" \
    && rm -rf /tmp/izgens \
    && useradd --system --create-home --uid 10001 --shell /usr/sbin/nologin izgens

USER izgens
WORKDIR /home/izgens

# IZGENS_ENV=prod refuses the dev stack's secrets.
# CLIENT_IP_HEADER=X-Real-IP: behind Railway's edge the socket peer is the proxy; the edge
# overwrites X-Real-IP with the address it accepted the connection from (the caller's, for
# per-address rate limits), while X-Forwarded-For ends in the edge's own hop. Unset it
# where the container is reachable without such a proxy: clients could then forge it
# (docs/deploy.md, "Container (Railway)": the other shape is TRUSTED_PROXY_HOPS).
# DB_POOL_SIZE: one process serves many requests at once (Lambda: 1 per container); keep
# replicas x DB_POOL_SIZE under the Supabase pooler's client limit.
ENV IZGENS_ENV=prod \
    CLIENT_IP_HEADER=X-Real-IP \
    DB_POOL_SIZE=10 \
    CLEANUP_INTERVAL_SECONDS=300

EXPOSE 8080

# /health is 200 once the database answers (psycopg's connect timeout is 5 s, tried twice)
HEALTHCHECK --interval=30s --timeout=15s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('PORT', '8080'), timeout=12)"]

# Railway sets PORT. exec: uvicorn gets SIGTERM itself, finishes requests in flight and the
# lifespan shutdown (which waits for a cleanup run in progress). --no-access-log: izgens
# logs one JSON line per request already. --no-proxy-headers: the client address is
# izgens.http.client_ip's (CLIENT_IP_HEADER); uvicorn's would take the leftmost
# X-Forwarded-For entry, which the client writes itself. --h11-max-incomplete-event-size:
# a long request line is the app's to refuse (izgens_local.servers.MAX_REQUEST_HEAD).
CMD ["sh", "-c", "exec uvicorn izgens.container:app --host 0.0.0.0 --port ${PORT:-8080} --no-proxy-headers --no-access-log --h11-max-incomplete-event-size 262144"]

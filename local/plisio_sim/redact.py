"""The API key kept out of the access log."""

from __future__ import annotations

from urllib.parse import unquote_plus

from starlette.types import ASGIApp, Message, Receive, Scope, Send


def _redact_query(raw: bytes) -> bytes:
    """The query string with every `api_key` value replaced; other pairs stay byte for byte."""
    pairs = []
    for pair in raw.split(b"&"):
        name = unquote_plus(pair.split(b"=", 1)[0].decode("latin-1"))
        pairs.append(b"api_key=[redacted]" if name == "api_key" else pair)
    return b"&".join(pairs)


class RedactKey:
    """Keeps `api_key` out of the server's access log, whoever serves the app.

    uvicorn (like most servers) logs the request's query string from the ASGI scope when the
    response starts; by then the app has checked the key, so the scope's copy is redacted
    just before that moment.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def redact_then_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                scope["query_string"] = _redact_query(scope.get("query_string", b""))
            await send(message)

        try:
            await self.app(scope, receive, redact_then_send)
        finally:
            scope["query_string"] = _redact_query(scope.get("query_string", b""))

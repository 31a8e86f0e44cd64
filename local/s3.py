"""The dev stack's S3: a moto server on loopback, its bucket, and the S3 → SQS → handler pump.

On AWS the bucket's ObjectCreated event invokes `video_stored` directly. moto can only invoke
Lambdas through Docker (and swallows the failure), so locally the bucket notifies an SQS queue
and `SqsEventPump` feeds each S3 event to a Python handler, with the same at-least-once,
redeliver-on-error behaviour.

Credentials are fixed dummies passed explicitly; the developer's AWS config is never used.

moto checks no signature at all. In front of it, `PresignedRequestCheck` checks what S3 and
Supabase Storage check on a presigned request (a query-string SigV4 signature): that it has
not expired and that the signature matches the request as sent, signed headers included.
So a presigned PUT whose Content-Type or Content-Length differs from what was signed is
refused here as it is there (403 SignatureDoesNotMatch), and so is an expired link.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import socket
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, unquote

from izgens.storage import Storage

__all__ = [
    "DEV_ACCESS_KEY_ID",
    "DEV_SECRET_ACCESS_KEY",
    "LocalS3",
    "SqsEventPump",
    "start_local_s3",
]

log = logging.getLogger(__name__)

DEV_ACCESS_KEY_ID = "test"
DEV_SECRET_ACCESS_KEY = "dev-s3-secret"  # in config.DEV_SECRETS, so prod refuses it


def _sqs_client(endpoint_url: str, region: str, access_key_id: str, secret: str) -> Any:
    import boto3

    session = boto3.session.Session(
        aws_access_key_id=access_key_id, aws_secret_access_key=secret, region_name=region
    )
    return session.client("sqs", endpoint_url=endpoint_url)


@dataclass
class LocalS3:
    """A running moto server with the bucket, the queue and the `videos/` notification."""

    endpoint_url: str
    bucket: str
    queue_url: str
    queue_arn: str
    region: str
    access_key_id: str = DEV_ACCESS_KEY_ID
    secret_access_key: str = DEV_SECRET_ACCESS_KEY
    _server: Any = field(default=None, repr=False)

    def storage(self, **kwargs: Any) -> Storage:
        """A Storage on this server (kwargs such as part_size pass through)."""
        return Storage(
            self.bucket,
            endpoint_url=self.endpoint_url,
            region=self.region,
            access_key_id=self.access_key_id,
            secret_access_key=self.secret_access_key,
            **kwargs,
        )

    def env(self) -> dict[str, str]:
        """The settings variables that point the functions at this server."""
        return {
            "S3_ENDPOINT_URL": self.endpoint_url,
            "S3_BUCKET": self.bucket,
            "AWS_REGION": self.region,
            "AWS_ACCESS_KEY_ID": self.access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.secret_access_key,
        }

    def pump(self, handler: Callable[[dict[str, Any]], None]) -> SqsEventPump:
        """A started pump that feeds this server's video events to `handler`."""
        return SqsEventPump(
            self.queue_url,
            self.endpoint_url,
            handler,
            region=self.region,
            access_key_id=self.access_key_id,
            secret_access_key=self.secret_access_key,
        ).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None


class PresignedRequestCheck:
    """WSGI middleware: refuse presigned requests that S3 would refuse (see module doc).

    Requests signed in the Authorization header (boto3's own calls) and unsigned ones pass
    through unchanged; every access key id is taken to hold `secret`, the emulator's one.
    """

    def __init__(self, app: Callable[..., Iterable[bytes]], secret: str) -> None:
        self.app = app
        self.secret = secret

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        query = environ.get("QUERY_STRING", "")
        # a CORS preflight carries the URL but no signature of its own (S3 answers it from
        # the bucket's CORS rules; moto allows every origin)
        if "X-Amz-Signature=" in query and environ.get("REQUEST_METHOD") != "OPTIONS":
            refusal = self.refusal(environ)
            if refusal is not None:
                code, message = refusal
                body = (
                    '<?xml version="1.0" encoding="UTF-8"?>\n'
                    f"<Error><Code>{code}</Code><Message>{message}</Message></Error>"
                ).encode()
                start_response(
                    "403 Forbidden",
                    [("Content-Type", "application/xml"), ("Content-Length", str(len(body)))],
                )
                return [body]
        return self.app(environ, start_response)

    def refusal(self, environ: dict[str, Any]) -> tuple[str, str] | None:
        pairs = [
            (unquote(k), unquote(v))
            for k, _, v in (item.partition("=") for item in environ["QUERY_STRING"].split("&"))
        ]
        params = dict(pairs)
        try:
            signed_at = datetime.strptime(params["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(
                tzinfo=UTC
            )
            lifetime = int(params["X-Amz-Expires"])
            _key_id, day, region, service, _ = params["X-Amz-Credential"].split("/")
            names = params["X-Amz-SignedHeaders"].split(";")
        except (KeyError, ValueError):
            return ("AuthorizationQueryParametersError", "malformed presigned request")
        if datetime.now(UTC) > signed_at + timedelta(seconds=lifetime):
            return ("AccessDenied", "Request has expired")
        canonical_query = "&".join(
            f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}"
            for k, v in sorted(pairs)
            if k != "X-Amz-Signature"
        )
        raw_path = environ.get("RAW_URI") or environ.get("REQUEST_URI") or environ["PATH_INFO"]
        headers = [f"{name}:{' '.join(self.header(environ, name).split())}" for name in names]
        canonical = "\n".join(
            [
                environ["REQUEST_METHOD"],
                raw_path.split("?", 1)[0],
                canonical_query,
                *headers,
                "",
                ";".join(names),
                "UNSIGNED-PAYLOAD",
            ]
        )
        scope = f"{day}/{region}/{service}/aws4_request"
        digest = hashlib.sha256(canonical.encode()).hexdigest()
        to_sign = f"AWS4-HMAC-SHA256\n{params['X-Amz-Date']}\n{scope}\n{digest}"
        key = f"AWS4{self.secret}".encode()
        for part in (day, region, service, "aws4_request"):
            key = hmac.new(key, part.encode(), hashlib.sha256).digest()
        expected = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, params.get("X-Amz-Signature", "")):
            return (
                "SignatureDoesNotMatch",
                "The request signature we calculated does not match the signature you provided",
            )
        return None

    @staticmethod
    def header(environ: dict[str, Any], name: str) -> str:
        if name in ("content-type", "content-length"):
            return str(environ.get(name.upper().replace("-", "_"), ""))
        return str(environ.get("HTTP_" + name.upper().replace("-", "_"), ""))


def _moto_server(host: str, port: int, secret: str) -> Any:
    """moto's ThreadedMotoServer with `PresignedRequestCheck` in front of its app."""
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from moto.server import ThreadedMotoServer
    from werkzeug.serving import make_server

    class CheckedMotoServer(ThreadedMotoServer):
        def _server_entry(self) -> None:
            app = PresignedRequestCheck(DomainDispatcherApplication(create_backend_app), secret)
            self._server = make_server(
                self._ip_address, self._port, app, True, request_handler=MotoRequestHandler
            )
            self._server_ready_event.set()
            self._server.serve_forever()

    return CheckedMotoServer(ip_address=host, port=port, verbose=False)


def _check_port_free(host: str, port: int) -> None:
    """ThreadedMotoServer.start() waits forever if it cannot bind; fail loudly instead."""
    if port == 0:
        return
    probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        probe.bind((host, port))
    except OSError as exc:
        raise OSError(f"cannot start the S3 emulator: {host}:{port} is in use") from exc
    finally:
        probe.close()


def start_local_s3(
    port: int = 0,
    *,
    bucket: str = "izgens",
    queue_name: str = "izgens-video-events",
    region: str = "us-east-1",
) -> LocalS3:
    """Start moto on 127.0.0.1:`port` (0 = any free port) and set up bucket, queue, events."""
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    _check_port_free("127.0.0.1", port)
    server = _moto_server("127.0.0.1", port, DEV_SECRET_ACCESS_KEY)
    server.start()
    host, bound = server.get_host_and_port()
    endpoint = f"http://{host}:{bound}"
    try:
        sqs = _sqs_client(endpoint, region, DEV_ACCESS_KEY_ID, DEV_SECRET_ACCESS_KEY)
        queue_url = sqs.create_queue(QueueName=queue_name)["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        handle = LocalS3(endpoint, bucket, queue_url, queue_arn, region, _server=server)
        storage = handle.storage()
        storage.ensure_bucket()
        storage.configure_video_notifications(queue_arn)
    except BaseException:
        server.stop()
        raise
    return handle


class SqsEventPump:
    """Long-polls a queue and hands each message body (a parsed S3 event) to `handler`.

    A message is deleted only after the handler returns; if it raises, the error is logged
    and the message comes back after `visibility_timeout` seconds, like a failed Lambda
    invocation. A body that is not JSON can never succeed and is dropped with a warning.
    """

    def __init__(
        self,
        queue_url: str,
        endpoint_url: str,
        handler: Callable[[dict[str, Any]], None],
        *,
        region: str = "us-east-1",
        access_key_id: str = DEV_ACCESS_KEY_ID,
        secret_access_key: str = DEV_SECRET_ACCESS_KEY,
        wait_seconds: int = 1,
        visibility_timeout: int = 5,
    ) -> None:
        self.queue_url = queue_url
        self.endpoint_url = endpoint_url
        self.handler = handler
        self.region = region
        self.wait_seconds = wait_seconds
        self.visibility_timeout = visibility_timeout
        self._credentials = (access_key_id, secret_access_key)
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> SqsEventPump:
        if self._thread is not None:
            raise RuntimeError("the pump is already running")
        client = _sqs_client(self.endpoint_url, self.region, *self._credentials)
        self._thread = threading.Thread(
            target=self._run, args=(client,), name="izgens-sqs-pump", daemon=True
        )
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Finish the current poll and handler call, then return."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def __enter__(self) -> SqsEventPump:
        return self if self._thread is not None else self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _run(self, client: Any) -> None:
        while not self._stopping.is_set():
            try:
                response = client.receive_message(
                    QueueUrl=self.queue_url,
                    MaxNumberOfMessages=10,
                    WaitTimeSeconds=self.wait_seconds,
                    VisibilityTimeout=self.visibility_timeout,
                )
            except Exception:  # noqa: BLE001 - keep polling through emulator hiccups
                if self._stopping.is_set():
                    return
                log.warning("SQS receive failed; retrying", exc_info=True)
                self._stopping.wait(0.5)
                continue
            for message in response.get("Messages") or []:
                self._deliver(client, message)

    def _deliver(self, client: Any, message: dict[str, Any]) -> None:
        try:
            body = json.loads(message["Body"])
        except (KeyError, ValueError):
            log.warning("dropping SQS message %s: body is not JSON", message.get("MessageId"))
            self._delete(client, message)
            return
        try:
            self.handler(body)
        except Exception:  # noqa: BLE001 - any handler failure means "redeliver later"
            log.exception(
                "event handler failed; message %s left for redelivery", message.get("MessageId")
            )
            return
        self._delete(client, message)

    def _delete(self, client: Any, message: dict[str, Any]) -> None:
        try:
            client.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])
        except Exception:  # noqa: BLE001 - the message is redelivered; handlers are idempotent
            log.warning("could not delete SQS message %s", message.get("MessageId"), exc_info=True)

"""Our SigV4 presigner must produce exactly botocore's URL, signature included."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import boto3
import pytest
from botocore.config import Config

from izgens.storage import presign_get_url
from izgens.storage.presign import _content_disposition
from tests.support.servers import QuietHandler, StubServer

SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"


@pytest.mark.parametrize(
    ("endpoint", "region", "token"),
    [
        ("http://127.0.0.1:8003", "us-east-1", None),
        (None, "eu-west-1", "FwoGZXIvYXdzEJr//////////wEaDK+token/x="),
        (None, "us-east-1", None),
        ("https://abc.storage.supabase.co/storage/v1/s3", "ap-southeast-1", None),
    ],
)
@pytest.mark.parametrize(
    ("key", "filename"),
    [
        ("videos/00000000-0000-4000-8000-000000000001/a.mp4", None),
        ("exports/u/x-y_z.json", 'izgens export ü "x".json'),
        ("references/a/b~c.png", "plain.png"),
    ],
)
def test_presigned_get_matches_botocore(endpoint, region, token, key, filename) -> None:
    client = boto3.session.Session(
        aws_access_key_id="AKIDEXAMPLE",
        aws_secret_access_key=SECRET,
        aws_session_token=token,
        region_name=region,
    ).client(
        "s3",
        endpoint_url=endpoint,
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
    )
    params = {"Bucket": "my-bucket", "Key": key}
    disposition = _content_disposition(filename) if filename else None
    if disposition:
        params["ResponseContentDisposition"] = disposition
    reference = client.generate_presigned_url("get_object", Params=params, ExpiresIn=900)
    signed_at = parse_qs(urlsplit(reference).query)["X-Amz-Date"][0]
    ours = presign_get_url(
        endpoint=client.meta.endpoint_url,
        bucket="my-bucket",
        key=key,
        region=region,
        access_key="AKIDEXAMPLE",
        secret_key=SECRET,
        token=token,
        seconds=900,
        disposition=disposition,
        now=datetime.strptime(signed_at, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC),
    )
    a, b = urlsplit(reference), urlsplit(ours)
    assert (a.scheme, a.netloc, a.path) == (b.scheme, b.netloc, b.path)
    assert parse_qs(a.query) == parse_qs(b.query)  # the signature is one of them


@pytest.mark.parametrize("region", ["us-east-1", "eu-west-1", "ap-southeast-1", "us-west-2"])
def test_aws_endpoint_matches_botocore(region: str) -> None:
    from izgens.storage.presign import _aws_endpoint

    client = boto3.session.Session(
        aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key=SECRET, region_name=region
    ).client("s3", config=Config(signature_version="s3v4", s3={"addressing_style": "path"}))
    assert _aws_endpoint(region) == client.meta.endpoint_url


def test_lambda_role_credentials_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from izgens.storage import Storage

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "ASIAROLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_SESSION_TOKEN", "session-token")
    url = Storage("b", endpoint_url=None, region="eu-west-1").presigned_get("videos/a/b.mp4", 60)
    query = parse_qs(urlsplit(url).query)
    assert url.startswith("https://s3.eu-west-1.amazonaws.com/b/videos/a/b.mp4?")
    assert query["X-Amz-Security-Token"] == ["session-token"]
    assert query["X-Amz-Credential"][0].startswith("ASIAROLE/")


class CredentialsEndpoint:
    """Lambda's (SnapStart) container credentials endpoint: GET with the authorization
    token, answers the role's keys with an expiry; counts the requests."""

    def __init__(self, token: str = "lambda-auth-token") -> None:
        import json

        self.token = token
        self.requests = 0
        self.expiration = "2030-01-01T00:00:00Z"
        self.serial = 0
        state = self

        class Handler(QuietHandler):
            def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
                state.requests += 1
                if self.headers.get("Authorization") != state.token:
                    self.reply(401)
                    return
                state.serial += 1
                body = {
                    "AccessKeyId": f"ASIACONTAINER{state.serial}",
                    "SecretAccessKey": SECRET,
                    "Token": f"container-session-{state.serial}",
                    "Expiration": state.expiration,
                }
                self.reply(200, json.dumps(body).encode(), "application/json")

        self.server = StubServer(Handler).start()
        self.uri = f"{self.server.base}/2018-06-01/credentials"

    def stop(self) -> None:
        self.server.stop()


@pytest.fixture
def endpoint(monkeypatch: pytest.MonkeyPatch) -> Iterator[CredentialsEndpoint]:
    from izgens.storage import reset_credentials

    served = CredentialsEndpoint()
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", served.uri)
    monkeypatch.setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN", served.token)
    reset_credentials()
    yield served
    reset_credentials()
    served.stop()


def test_snapstart_credentials_come_from_the_container_endpoint(
    endpoint: CredentialsEndpoint,
) -> None:
    from izgens.storage import Storage, reset_credentials

    storage = Storage("b", endpoint_url=None, region="eu-west-1")
    first = parse_qs(urlsplit(storage.presigned_get("videos/a/b.mp4", 60)).query)
    assert first["X-Amz-Credential"][0].startswith("ASIACONTAINER1/")
    assert first["X-Amz-Security-Token"] == ["container-session-1"]
    for _ in range(3):  # kept while they are valid: one GET for every link
        storage.presigned_get("videos/a/b.mp4", 60)
    assert endpoint.requests == 1
    reset_credentials()  # what the SnapStart after-restore hook does
    again = parse_qs(urlsplit(storage.presigned_get("videos/a/b.mp4", 60)).query)
    assert again["X-Amz-Credential"][0].startswith("ASIACONTAINER2/")


def test_container_credentials_are_fetched_again_before_they_expire(
    endpoint: CredentialsEndpoint,
) -> None:
    from izgens.storage import ContainerCredentials

    clock = [datetime(2029, 12, 31, 23, 0, tzinfo=UTC).timestamp()]
    credentials = ContainerCredentials(clock=lambda: clock[0])
    env = {
        "AWS_CONTAINER_CREDENTIALS_FULL_URI": endpoint.uri,
        "AWS_CONTAINER_AUTHORIZATION_TOKEN": endpoint.token,
    }
    assert credentials.get(env)[0] == "ASIACONTAINER1"
    clock[0] += 54 * 60  # 6 minutes before the expiry: still good
    assert credentials.get(env)[0] == "ASIACONTAINER1"
    clock[0] += 60  # 5 minutes before: fetched again
    endpoint.expiration = "2030-01-01T06:00:00Z"
    assert credentials.get(env)[0] == "ASIACONTAINER2"
    assert credentials.get(env)[0] == "ASIACONTAINER2" and endpoint.requests == 2


def test_the_token_file_is_read_and_a_refused_token_is_an_error(
    endpoint: CredentialsEndpoint, tmp_path: Path
) -> None:
    from izgens.errors import ProviderUnavailable
    from izgens.storage import ContainerCredentials

    token_file = tmp_path / "token"
    token_file.write_text(endpoint.token + "\n")
    env = {
        "AWS_CONTAINER_CREDENTIALS_FULL_URI": endpoint.uri,
        "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": str(token_file),
    }
    assert ContainerCredentials().get(env)[0] == "ASIACONTAINER1"
    wrong = {
        "AWS_CONTAINER_CREDENTIALS_FULL_URI": endpoint.uri,
        "AWS_CONTAINER_AUTHORIZATION_TOKEN": "forged",
    }
    with pytest.raises(ProviderUnavailable, match="container credentials"):
        ContainerCredentials().get(wrong)


def test_signing_with_container_credentials_imports_neither_boto3_nor_botocore(
    endpoint: CredentialsEndpoint,
) -> None:
    import os
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from izgens.storage import Storage\n"
        "url = Storage('b', endpoint_url=None, region='eu-west-1').presigned_get('videos/a/b.mp4', 60)\n"
        "assert 'ASIACONTAINER' in url, url\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('boto3', 'botocore')))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("endpoint", "region", "token"),
    [
        ("https://abc.supabase.co/storage/v1/s3", "ap-southeast-1", None),
        ("http://127.0.0.1:8003", "us-east-1", None),
        (None, "eu-west-1", "FwoGZXIvYXdzEJr//////////wEaDK+token/x="),
    ],
)
@pytest.mark.parametrize(("content_type", "length"), [("image/png", 1234), ("video/mp4", 10**8)])
def test_presigned_put_matches_botocore(endpoint, region, token, content_type, length) -> None:
    from izgens.storage import presign_put_url

    client = boto3.session.Session(
        aws_access_key_id="AKIDEXAMPLE",
        aws_secret_access_key=SECRET,
        aws_session_token=token,
        region_name=region,
    ).client(
        "s3",
        endpoint_url=endpoint,
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
    )
    key = "references/00000000-0000-4000-8000-000000000001/0123456789abcdef0123456789abcdef.png"
    reference = client.generate_presigned_url(
        "put_object",
        Params={"Bucket": "b", "Key": key, "ContentType": content_type, "ContentLength": length},
        ExpiresIn=900,
    )
    signed_at = parse_qs(urlsplit(reference).query)["X-Amz-Date"][0]
    ours = presign_put_url(
        endpoint=client.meta.endpoint_url,
        bucket="b",
        key=key,
        region=region,
        access_key="AKIDEXAMPLE",
        secret_key=SECRET,
        token=token,
        seconds=900,
        content_type=content_type,
        content_length=length,
        now=datetime.strptime(signed_at, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC),
    )
    a, b = urlsplit(reference), urlsplit(ours)
    assert (a.scheme, a.netloc, a.path) == (b.scheme, b.netloc, b.path)
    assert parse_qs(a.query) == parse_qs(b.query)
    assert parse_qs(b.query)["X-Amz-SignedHeaders"] == ["content-length;content-type;host"]


@pytest.mark.parametrize(
    ("endpoint", "expected"),
    [
        ("", "post"),
        ("http://127.0.0.1:8003", "post"),
        ("https://abcdefgh.supabase.co/storage/v1/s3", "put"),
        ("https://abcdefgh.storage.supabase.co/storage/v1/s3", "put"),
        ("https://storage.example.com/storage/v1/s3/", "put"),
    ],
)
def test_upload_method_defaults_from_the_endpoint(endpoint: str, expected: str) -> None:
    from izgens.config import Settings

    assert Settings.from_environ({"S3_ENDPOINT_URL": endpoint}).upload_method == expected
    assert (
        Settings.from_environ(
            {"S3_ENDPOINT_URL": endpoint, "S3_UPLOAD_METHOD": "post"}
        ).upload_method
        == "post"
    )
    assert Settings.from_environ({"S3_UPLOAD_METHOD": "put"}).upload_method == "put"


@pytest.mark.parametrize(
    ("endpoint", "region", "token"),
    [
        ("http://127.0.0.1:8003", "us-east-1", None),
        (None, "eu-west-1", "FwoGZXIvYXdzEJr//////////wEaDK+token/x="),
        ("https://abc.storage.supabase.co/storage/v1/s3", "ap-southeast-1", None),
    ],
)
@pytest.mark.parametrize(
    "key",
    [
        "videos/00000000-0000-4000-8000-000000000001/00000000-0000-4000-8000-000000000002.mp4",
        "references/a/b~c.png",
        "exports/u/ü x.json",  # a key our layout never makes: still quoted right
    ],
)
def test_the_export_link_signer_signs_as_presign_get_url(endpoint, region, token, key) -> None:
    from izgens.storage import LinkSigner
    from izgens.storage.presign import _aws_endpoint

    now = datetime(2026, 12, 3, 14, 0, 5, tzinfo=UTC)
    common = {
        "endpoint": endpoint or _aws_endpoint(region),
        "bucket": "my-bucket",
        "region": region,
        "access_key": "AKIDEXAMPLE",
        "secret_key": SECRET,
        "token": token,
        "seconds": 43200,
        "now": now,
    }
    expected = presign_get_url(key=key, disposition=None, **common)
    assert LinkSigner(**common)(key.encode()) == expected.encode()

"""The `izgens` command through its entry point (`izgens.cli.main`), against the test
database; once through the installed console script. Exit codes: 0 ok, 1 refused (or a
cleanup job failed), 2 usage or environment error."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import jwt
import psycopg
import pytest

from izgens import cleanup
from izgens.cli import HTTP_FUNCTIONS, main
from izgens.db import Database
from izgens_local.devauth import DevSigner
from tests.conftest import DevServer

SUBCOMMANDS = [
    ["dev"],
    ["migrate"],
    ["credits", "grant"],
    ["credits", "refund"],
    ["credits", "show"],
    ["purchases", "show"],
    ["cleanup"],
    ["openapi"],
    ["users", "create"],
]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, Any, str]:
    """(exit code, stdout parsed as JSON when it is, stderr)."""
    try:
        code = main(list(argv))
    except SystemExit as exc:  # argparse: --help and usage errors
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    try:
        parsed: Any = json.loads(out)
    except ValueError:
        parsed = out
    return code, parsed, err


@pytest.mark.parametrize("argv", SUBCOMMANDS, ids=" ".join)
def test_every_subcommand_has_help(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, *argv, "--help")
    assert code == 0
    assert out.startswith(f"usage: izgens {' '.join(argv)}")


def test_a_missing_subcommand_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys)
    assert code == 2 and "required" in err
    code, _, err = run(capsys, "cleanup", "--bogus")
    assert code == 2 and "unrecognized arguments" in err


# --- cleanup --------------------------------------------------------------------------------


def test_cleanup_runs_every_job_once_and_prints_counts(
    db: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "cleanup")
    assert code == 0, err
    assert list(out) == list(cleanup.JOBS)
    assert all(isinstance(counts["ms"], int) for counts in out.values())
    assert out["ledger_check"]["mismatches"] == 0
    # progress, one line before and after each job, on stderr
    assert f"cleanup [1/{len(cleanup.JOBS)}] generations ..." in err
    assert f"cleanup [{len(cleanup.JOBS)}/{len(cleanup.JOBS)}] ledger_check: " in err


def test_cleanup_runs_only_the_named_jobs(db: Database, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "cleanup", "--job", "rate_limits", "--job", "ledger_check")
    assert code == 0
    assert list(out) == ["rate_limits", "ledger_check"]


def test_cleanup_now_makes_in_flight_generations_due_at_once(
    db: Database, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without --now a generation counts as stuck after 60 s untouched, as on the schedule;
    with --now every in-flight one is checked."""
    from izgens import generations

    seen: list[int] = []

    class Recorder:
        def reconcile(self, *, older_than_seconds: int, limit: int) -> dict[str, int]:
            seen.append(older_than_seconds)
            return {"checked": 0}

    monkeypatch.setattr(generations.Lifecycle, "from_settings", classmethod(lambda cls: Recorder()))
    assert run(capsys, "cleanup", "--job", "generations")[0] == 0
    assert run(capsys, "cleanup", "--now", "--job", "generations")[0] == 0
    assert seen == [60, 0]
    assert cleanup.due_now() is False  # the flag does not leak out of the run


def test_cleanup_exits_1_when_a_job_fails_and_still_runs_the_others(
    db: Database, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken() -> dict[str, int]:
        raise RuntimeError("boom")

    monkeypatch.setitem(cleanup.JOBS, "broken", broken)
    code, out, err = run(capsys, "cleanup", "--job", "broken", "--job", "ledger_check")
    assert code == 1
    assert out["broken"]["error"] == 1
    assert out["ledger_check"]["mismatches"] == 0
    assert "cleanup job(s) failed: broken" in err


def test_cleanup_of_an_unknown_job_is_a_usage_error(
    db: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "cleanup", "--job", "nope")
    assert code == 2
    assert out == ""
    assert "unknown job(s): nope" in err and "ledger_check" in err


def test_installed_script_runs_cleanup(db_url: str) -> None:
    script = Path(sys.executable).with_name("izgens")
    command = str(script) if script.exists() else shutil.which("izgens")
    assert command, "the izgens console script is not installed"
    env = {**os.environ, "DATABASE_URL": db_url}
    done = subprocess.run(
        [command, "cleanup", "--job", "ledger_check"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["ledger_check"]["mismatches"] == 0
    failed = subprocess.run(
        [command, "cleanup", "--job", "nope"], env=env, capture_output=True, text=True, timeout=60
    )
    assert failed.returncode == 2 and "unknown job(s)" in failed.stderr


# --- openapi --------------------------------------------------------------------------------


def test_openapi_writes_one_document_per_http_function(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], dev_server: DevServer
) -> None:
    import httpx

    code, out, _ = run(capsys, "openapi", "--out", str(tmp_path / "openapi"))
    assert code == 0
    written = {Path(p).stem for p in out["written"]}
    assert written == set(HTTP_FUNCTIONS)
    for name in written:
        document = json.loads((tmp_path / "openapi" / f"{name}.json").read_text())
        assert document["openapi"].startswith("3.")
        served = httpx.get(f"{dev_server.base}/{name}/openapi.json", timeout=10).json()
        assert document["paths"] == served["paths"], f"{name}: differs from the dev server's"


def test_openapi_prints_documents_without_out(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "openapi", "--function", "status")
    assert code == 0
    assert list(out) == ["status"]
    assert "/generations/{generation_id}" in out["status"]["paths"]


def test_openapi_errors_are_usage_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "openapi", "--function", "video_stored")
    assert code == 2 and "no HTTP function named video_stored" in err
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    code, _, err = run(capsys, "openapi", "--out", str(blocker))
    assert code == 2 and "cannot write to" in err


# --- users create ---------------------------------------------------------------------------


def _users(db: Database) -> int:
    row = db.one("select count(*) as n from auth.users")
    assert row is not None
    return int(row["n"])


def test_users_create_is_refused_outside_the_dev_stack(
    db: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    assert os.environ["IZGENS_ENV"] == "test"
    before = _users(db)
    code, out, err = run(capsys, "users", "create", "--email", "nobody@example.com")
    assert code == 1
    assert out == ""
    assert "dev stack only" in err
    assert _users(db) == before


def test_users_create_makes_an_adult_with_credits_and_a_dev_token(
    db: Database,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("IZGENS_ENV", "dev")
    monkeypatch.setenv("IZGENS_STATE_DIR", str(tmp_path))
    code, out, err = run(
        capsys, "users", "create", "--email", "Ada@Example.com", "--credits", "50", "--adult"
    )
    assert code == 0, err
    user_id = uuid.UUID(out["user_id"])
    assert (out["balance"], out["age_confirmed"]) == (50, True)
    profile = db.one(
        "select balance, age_confirmed_at from public.profiles where user_id = %s", (user_id,)
    )
    assert profile is not None and profile["balance"] == 50 and profile["age_confirmed_at"]

    # signed with the dev stack's key in the state dir, as the running dev server checks it
    base = os.environ.get("SUPABASE_URL") or "http://127.0.0.1:8000"
    signer = DevSigner(f"{base}/auth/v1", tmp_path / "dev-jwt-key.pem")
    key = jwt.PyJWK(signer.jwks()["keys"][0])
    claims = jwt.decode(
        out["access_token"],
        key.key,
        algorithms=["ES256"],
        audience="authenticated",
        issuer=f"{base}/auth/v1",
    )
    assert claims["sub"] == str(user_id) and claims["email"] == "Ada@Example.com"

    code, _, err = run(capsys, "users", "create", "--email", "ada@example.com")
    assert code == 1 and str(user_id) in err  # the same email (any case) is refused


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--email", "not an email"], "not an email address"),
        (["--email", "a@example.com", "--credits", "0"], "--credits must be a positive"),
        (["--email", "a@example.com", "--ttl-hours", "999"], "--ttl-hours"),
    ],
)
def test_users_create_bad_arguments_are_usage_errors(
    argv: list[str],
    message: str,
    db: Database,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("IZGENS_ENV", "dev")
    before = _users(db)
    code, _, err = run(capsys, "users", "create", *argv)
    assert code == 2 and message in err
    assert _users(db) == before


def test_without_database_url_commands_use_the_dev_stack_database(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Started if needed (and stopped again): the data stays in the state directory."""
    from izgens_local.pg import _alive, _postmaster_pid

    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setenv("IZGENS_STATE_DIR", str(tmp_path))
    code, out, err = run(capsys, "users", "create", "--email", "dev2@example.com", "--adult")
    assert code == 0, err
    pgdata = tmp_path / "pg"
    pid = _postmaster_pid(pgdata)
    assert pid is None or not _alive(pid), "the CLI left the dev database running"

    code, shown, err = run(capsys, "credits", "show", "--user", out["user_id"])
    assert code == 0, err
    assert shown["account"]["age_confirmed"] is True
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(host=str(pgdata), user="postgres", dbname="postgres", connect_timeout=2)

"""The `izgens` command: operations on the database and the dev stack.

With DATABASE_URL unset, every command talks to the dev stack's database (starting it if
needed), so `izgens credits show` next to a running `make dev` sees what the console shows;
`izgens cleanup` then also uses the dev stack's settings (its simulators, its bucket).
Exit codes: 0 ok, 1 the operation was refused (or a cleanup job failed), 2 usage or
environment error. Results go to stdout as JSON; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.util
import json
import os
import sys
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from izgens import errors

__all__ = ["HTTP_FUNCTIONS", "main"]

HTTP_FUNCTIONS = ("generate", "status", "account", "plisio_webhook", "privacy_export")


class UsageError(Exception):
    """A bad argument or environment: exit code 2."""


class Refused(Exception):
    """The command will not do this here: exit code 1."""


def _out(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, default=str) + "\n")


def _progress(message: str) -> None:
    sys.stderr.write(message + "\n")
    sys.stderr.flush()


@contextlib.contextmanager
def _database_url() -> Iterator[str]:
    url = os.environ.get("DATABASE_URL")
    if url:
        yield url
        return
    try:
        from izgens_local.stack import start_database
    except ImportError:
        raise SystemExit("DATABASE_URL is not set (and the dev stack is not installed)") from None
    pg = start_database()
    try:
        yield pg.url
    finally:
        pg.stop()


@contextlib.contextmanager
def _db() -> Iterator[Any]:
    from izgens.db import Database

    with _database_url() as url:
        db = Database(url, size=2, name="izgens-cli")
        try:
            yield db
        finally:
            db.close()


@contextlib.contextmanager
def _job_environment() -> Iterator[str]:
    """Settings for library code that reads `get_settings()` (the cleanup jobs): the
    environment as it is, or, with DATABASE_URL unset, the dev stack's database and dev
    values, so jobs reach the simulators and bucket of a running `make dev`."""
    from izgens.config import reset_settings
    from izgens.db import reset_database

    if os.environ.get("DATABASE_URL"):
        try:
            yield os.environ["DATABASE_URL"]
        finally:
            reset_database()
        return
    with _database_url() as url:
        from izgens_local.stack import DevPorts, dev_environment

        applied = dev_environment(DevPorts.from_env(), url)
        os.environ.update(applied)
        reset_settings()
        reset_database()
        try:
            yield url
        finally:
            reset_database()
            for name in applied:
                os.environ.pop(name, None)
            reset_settings()


def cmd_dev(args: argparse.Namespace) -> int:
    try:
        from izgens_local.stack import run_dev
    except ImportError:
        sys.stderr.write("the dev stack needs the dev extras: pip install -e '.[dev]'\n")
        return 2
    return run_dev()


def cmd_migrate(args: argparse.Namespace) -> int:
    from izgens.migrations import apply_migrations

    with _database_url() as url:
        applied = apply_migrations(url, bootstrap_auth=args.bootstrap_auth)
    _out({"applied": applied})
    return 0


def cmd_credits(args: argparse.Namespace) -> int:
    from izgens import accounts, credits

    user = uuid.UUID(args.user)
    with _db() as db:
        if args.action == "show":
            account = accounts.get_account(db, user)
            page = credits.ledger_page(db, user, limit=args.limit)
            _out({"account": account.model_dump(), "ledger": [e.model_dump() for e in page.items]})
            return 0
        ref = args.ref or f"operator:{uuid.uuid4()}"
        if args.action == "grant":
            entry = credits.grant(db, user, args.credits, ref, args.reason)
        else:
            entry = credits.debit(db, user, args.credits, ref, args.reason)
        _out(entry.model_dump())
    return 0


def cmd_purchases(args: argparse.Namespace) -> int:
    from izgens import payments

    purchase = uuid.UUID(args.id)
    with _db() as db:
        details = payments.get_purchase_details(db, purchase)
    _out(details.model_dump())
    return 0


def cmd_cleanup(args: argparse.Namespace) -> int:
    from izgens.cleanup import JOBS, failed_jobs, run_jobs

    names = list(dict.fromkeys(args.job or JOBS))  # in order, each once
    unknown = [name for name in names if name not in JOBS]
    if unknown:
        raise UsageError(f"unknown job(s): {', '.join(unknown)}; known: {', '.join(JOBS)}")
    results: dict[str, dict[str, int]] = {}
    with _job_environment():
        for number, name in enumerate(names, 1):
            _progress(f"cleanup [{number}/{len(names)}] {name} ...")
            results.update(run_jobs([name], now=args.now))
            counts = ", ".join(f"{k}={v}" for k, v in results[name].items())
            _progress(f"cleanup [{number}/{len(names)}] {name}: {counts}")
    _out(results)
    failed = failed_jobs(results)
    if failed:
        sys.stderr.write(f"izgens: cleanup job(s) failed: {', '.join(failed)} (see the log)\n")
        return 1
    return 0


def _since(value: str) -> Any:
    """`24h`, `30m`, `7d`, `90s` before now, or an ISO 8601 moment (UTC when no offset)."""
    import re
    from datetime import UTC, datetime, timedelta

    found = re.fullmatch(r"(\d{1,6})([smhd])", value.strip())
    if found:
        unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[found.group(2)]
        return datetime.now(UTC) - timedelta(**{unit: int(found.group(1))})
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise UsageError(f"--since: {value!r} is neither like 24h nor an ISO 8601 time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _usd(micro: int) -> str:
    return f"{micro / 1_000_000:,.4f}"


def cmd_margin(args: argparse.Namespace) -> int:
    from izgens.margins import margin_report

    since = _since(args.since)
    with _db() as db:
        report = margin_report(db, since)
    if args.json:
        _out(
            {
                "since": report.since,
                "rows": [
                    {**row.model_dump(), "margin_micro_usd": row.margin_micro_usd}
                    for row in report.rows
                ],
                "underpriced": [u.model_dump() for u in report.underpriced],
            }
        )
        return 0
    lines = [
        f"generations billed since {report.since.isoformat(timespec='seconds')}",
        f"{'model':<36} {'res':<6} {'gens':>6} {'credits':>9} {'charged $':>11}"
        f" {'provider $':>11} {'margin $':>11} {'margin':>7}",
    ]
    for row in report.rows:
        ratio = (
            f"{row.charged_micro_usd / row.provider_cost_micro_usd:.2f}x"
            if row.provider_cost_micro_usd
            else "-"
        )
        lines.append(
            f"{row.model:<36} {row.resolution:<6} {row.generations:>6} {row.credits_charged:>9}"
            f" {_usd(row.charged_micro_usd):>11} {_usd(row.provider_cost_micro_usd):>11}"
            f" {_usd(row.margin_micro_usd):>11} {ratio:>7}"
        )
    if not report.rows:
        lines.append("(none)")
    lines.append(f"underpriced generations: {len(report.underpriced)}")
    for gen in report.underpriced:
        lines.append(
            f"  {gen.id} {gen.model} {gen.resolution} {gen.duration}s"
            f" +{gen.input_video_ms / 1000:g}s video input, {gen.status}: charged"
            f" ${_usd(gen.charged_micro_usd)} ({gen.cost} credits), provider"
            f" ${_usd(gen.provider_cost_micro_usd)} ({gen.provider_tokens} tokens)"
        )
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


def _available_functions() -> list[str]:
    return [
        name
        for name in HTTP_FUNCTIONS
        if importlib.util.find_spec(f"izgens_functions.{name}.handler") is not None
    ]


def cmd_openapi(args: argparse.Namespace) -> int:
    """Each HTTP function's OpenAPI document, as its own root (on AWS a function URL is)."""
    names = _available_functions()
    if args.function:
        missing = [name for name in args.function if name not in names]
        if missing:
            raise UsageError(
                f"no HTTP function named {', '.join(missing)}; available: {', '.join(names)}"
            )
        names = list(dict.fromkeys(args.function))
    documents = {
        name: importlib.import_module(f"izgens_functions.{name}.handler").app.openapi()
        for name in names
    }
    if args.out is None:
        _out(documents)
        return 0
    out = Path(args.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        written = []
        for name, document in documents.items():
            path = out / f"{name}.json"
            path.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
            written.append(str(path))
    except OSError as exc:
        raise UsageError(f"cannot write to {out}: {exc.strerror or exc}") from None
    _out({"written": written})
    return 0


def _is_dev_database(url: str) -> bool:
    """The dev stack's own Postgres: its socket lives in the dev state directory."""
    from psycopg.conninfo import conninfo_to_dict

    from izgens_local.pg import state_dir

    try:
        host = str(conninfo_to_dict(url).get("host") or "")
    except Exception:  # noqa: BLE001 - an unparsable URL is simply not the dev database
        return False
    return bool(host) and Path(host).resolve() == (state_dir() / "pg").resolve()


def cmd_users(args: argparse.Namespace) -> int:
    """Dev only: a user, optionally adult and with credits, and a token for the dev stack."""
    from izgens import accounts, credits

    try:
        from izgens_local.devauth import DevSigner
        from izgens_local.pg import state_dir
        from izgens_local.stack import DevPorts
    except ImportError:
        raise UsageError("users create needs the dev extras: pip install -e '.[dev]'") from None
    given = os.environ.get("DATABASE_URL")
    if given and os.environ.get("IZGENS_ENV") != "dev" and not _is_dev_database(given):
        raise Refused(
            "users create is for the dev stack only: unset DATABASE_URL (the dev stack's "
            "database) or set IZGENS_ENV=dev"
        )
    email = args.email.strip()
    if "@" not in email or len(email) > 254 or any(c.isspace() for c in email):
        raise UsageError(f"not an email address: {args.email!r}")
    if args.credits is not None and args.credits <= 0:
        raise UsageError("--credits must be a positive number")
    if not 1 <= args.ttl_hours <= 168:
        raise UsageError("--ttl-hours must be between 1 and 168")
    with _db() as db:
        existing = db.one("select id from auth.users where lower(email) = lower(%s)", (email,))
        if existing:
            raise Refused(f"a user with email {email} exists already: {existing['id']}")
        user_id = uuid.uuid4()
        db.execute("insert into auth.users (id, email) values (%s, %s)", (user_id, email))
        db.one("select * from izgens.ensure_profile(%s)", (user_id,))
        if args.adult:
            accounts.confirm_age(db, user_id)
        if args.credits:
            credits.grant(db, user_id, args.credits, f"cli:users-create:{user_id}", "dev user")
        account = accounts.get_account(db, user_id)
    base = os.environ.get("SUPABASE_URL") or f"http://127.0.0.1:{DevPorts.from_env().dev}"
    signer = DevSigner(f"{base.rstrip('/')}/auth/v1", state_dir() / "dev-jwt-key.pem")
    ttl = args.ttl_hours * 3600
    _out(
        {
            "user_id": str(user_id),
            "email": email,
            "balance": account.balance,
            "age_confirmed": account.age_confirmed,
            "access_token": signer.token(user_id, email, ttl=ttl),
            "expires_in": ttl,
        }
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="izgens", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    dev = sub.add_parser("dev", help="run the whole system locally (make dev)")
    dev.set_defaults(func=cmd_dev)

    migrate = sub.add_parser("migrate", help="apply pending migrations (twice is a no-op)")
    migrate.add_argument(
        "--bootstrap-auth",
        action="store_true",
        help="first create the stand-in for Supabase's auth schema (plain Postgres only)",
    )
    migrate.set_defaults(func=cmd_migrate, bootstrap_auth=False)

    cred = sub.add_parser("credits", help="grant, take back or show a user's credits")
    cred_sub = cred.add_subparsers(dest="action", required=True)
    for action, text in (
        ("grant", "add credits (recorded in the ledger as 'grant')"),
        ("refund", "take credits back after the buyer's money was returned ('operator_debit')"),
    ):
        p = cred_sub.add_parser(action, help=text)
        p.add_argument("--user", required=True, help="user id (uuid)")
        p.add_argument("--credits", required=True, type=int)
        p.add_argument("--reason", required=True, help="why, for the ledger (no personal data)")
        p.add_argument("--ref", help="idempotency reference; the same ref never applies twice")
    show = cred_sub.add_parser("show", help="balance and recent ledger entries")
    show.add_argument("--user", required=True)
    show.add_argument("--limit", type=int, default=20)
    cred.set_defaults(func=cmd_credits)

    purchases = sub.add_parser("purchases", help="look into purchases (support)")
    purchases_sub = purchases.add_subparsers(dest="action", required=True)
    show_purchase = purchases_sub.add_parser(
        "show", help="a purchase and every payment event recorded for it, as JSON"
    )
    show_purchase.add_argument("id", help="purchase id (uuid; Plisio's order_number)")
    purchases.set_defaults(func=cmd_purchases)

    margin = sub.add_parser(
        "margin",
        help="what generations were charged against what the provider billed",
        description=(
            "Per model and resolution, the settled generations the provider billed since a\n"
            "moment: how many, the credits charged and their value, the provider's cost and\n"
            "the margin; then every generation whose provider cost exceeded what it was\n"
            "charged (docs/operations.md)."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    margin.add_argument(
        "--since", default="24h", help="e.g. 24h, 30m, 7d, or an ISO 8601 time (default 24h)"
    )
    margin.add_argument("--json", action="store_true", help="print the report as JSON")
    margin.set_defaults(func=cmd_margin)

    _add_cleanup(sub)
    _add_openapi(sub)
    _add_users(sub)
    return parser


def _add_cleanup(sub: Any) -> None:
    from izgens.cleanup import JOBS

    jobs = "\n".join(
        f"  {name:<18} {(fn.__doc__ or '').strip().splitlines()[0] if fn.__doc__ else ''}"
        for name, fn in JOBS.items()
    )
    cleanup = sub.add_parser(
        "cleanup",
        help="run the scheduled cleanup jobs once and print their counts",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=f"jobs, in the order they run:\n{jobs}",
        description=(
            "Run the cleanup jobs once, as the schedule does (every job, or those named),\n"
            "and print their counts as JSON; progress goes to stderr. Exit 1 if a job failed.\n"
            "\n"
            "--now treats in-flight work as due at once: every in-flight generation is checked\n"
            "with the provider now instead of after 60 s untouched. Retention and deletion\n"
            "grace periods are never shortened."
        ),
    )
    cleanup.add_argument(
        "--now", action="store_true", help="in-flight work is due at once (no waiting threshold)"
    )
    cleanup.add_argument(
        "--job",
        action="append",
        metavar="NAME",
        help="run only this job (repeatable); default: every job",
    )
    cleanup.set_defaults(func=cmd_cleanup)


def _add_openapi(sub: Any) -> None:
    openapi = sub.add_parser(
        "openapi",
        help="write one OpenAPI document per HTTP function",
        description=(
            "One OpenAPI document per HTTP function (the dev server serves the same at "
            "/<function>/openapi.json). With --out, writes DIR/<function>.json; without, "
            "prints {function: document} as JSON."
        ),
    )
    openapi.add_argument("--out", metavar="DIR", help="directory to write <function>.json into")
    openapi.add_argument(
        "--function",
        action="append",
        metavar="NAME",
        help=f"only this function (repeatable): {', '.join(HTTP_FUNCTIONS)}",
    )
    openapi.set_defaults(func=cmd_openapi)


def _add_users(sub: Any) -> None:
    users = sub.add_parser("users", help="dev-stack users (dev only)")
    users_sub = users.add_subparsers(dest="action", required=True)
    create = users_sub.add_parser(
        "create",
        help="create a user and print its id and a dev access token",
        description=(
            "Dev only: creates a user in the dev stack's database (DATABASE_URL unset) or, "
            "with IZGENS_ENV=dev, in DATABASE_URL's; prints its user_id and an access token "
            "signed with the dev stack's key (accepted by a running make dev). Refused "
            "(exit 1) anywhere else."
        ),
    )
    create.add_argument("--email", required=True)
    create.add_argument("--credits", type=int, help="grant this many credits")
    create.add_argument("--adult", action="store_true", help="confirm the user's age (18+)")
    create.add_argument(
        "--ttl-hours",
        type=int,
        default=12,
        metavar="HOURS",
        help="token lifetime in hours, 1 to 168 (default 12)",
    )
    users.set_defaults(func=cmd_users)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except errors.IzgensError as exc:
        sys.stderr.write(f"izgens: refused: {exc.code}: {exc.detail}\n")
        return 1
    except Refused as exc:
        sys.stderr.write(f"izgens: refused: {exc}\n")
        return 1
    except (UsageError, ValueError) as exc:
        sys.stderr.write(f"izgens: {exc}\n")
        return 2


if __name__ == "__main__":
    raise SystemExit(main())

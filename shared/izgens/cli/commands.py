"""One function per `izgens` command; each returns its exit code."""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import sys
import uuid
from pathlib import Path
from typing import Any

from izgens.cli.context import (
    HTTP_FUNCTIONS,
    Refused,
    UsageError,
    _database_url,
    _db,
    _job_environment,
    _out,
    _progress,
)


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

"""The `izgens` command: operations on the database and the dev stack.

With DATABASE_URL unset, every command talks to the dev stack's database (starting it if
needed), so `izgens credits show` next to a running `make dev` sees what the console shows.
Exit codes: 0 ok, 1 the operation was refused, 2 usage or environment error.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

from izgens import errors

__all__ = ["main"]


def _out(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, default=str) + "\n")


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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except errors.IzgensError as exc:
        sys.stderr.write(f"izgens: refused: {exc.code}: {exc.detail}\n")
        return 1
    except ValueError as exc:
        sys.stderr.write(f"izgens: {exc}\n")
        return 2


if __name__ == "__main__":
    raise SystemExit(main())

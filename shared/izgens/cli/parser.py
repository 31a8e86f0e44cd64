"""The `izgens` command: operations on the database and the dev stack.

The arguments of every command, and `main` (the console script).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from izgens import errors
from izgens.cli.commands import (
    cmd_cleanup,
    cmd_credits,
    cmd_dev,
    cmd_margin,
    cmd_migrate,
    cmd_openapi,
    cmd_purchases,
    cmd_users,
)
from izgens.cli.context import HTTP_FUNCTIONS, Refused, UsageError

__all__ = ["main"]


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

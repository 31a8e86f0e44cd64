"""`izgens purchases show ID`: a purchase and its payment events as JSON, for support."""

from __future__ import annotations

import json
import uuid

import pytest

from izgens import cli
from izgens.db import Database
from tests.payments.support import SECRET, callback_body, new_purchase
from tests.support.users import make_user


def test_purchases_show_prints_the_purchase_and_its_events(
    db: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    from izgens import payments

    user = make_user(db)
    pid = new_purchase(db, user)
    for status in ("pending", "completed"):
        payments.handle_callback(db, callback_body(str(pid), status, paid="5.0"), secret_key=SECRET)
    capsys.readouterr()  # log lines of the callbacks, if logging writes to this stdout
    assert cli.main(["purchases", "show", str(pid)]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["purchase"]["id"] == str(pid) and shown["purchase"]["status"] == "completed"
    assert (shown["purchase"]["amount"], shown["purchase"]["paid_amount"]) == ("5.00", "5.00000000")
    assert [e["status"] for e in shown["events"]] == ["pending", "completed"]
    assert shown["events"][1]["payload"]["verify_hash"]


def test_purchases_show_refuses_unknown_and_malformed_ids(
    db: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["purchases", "show", str(uuid.uuid4())]) == 1
    assert "not_found" in capsys.readouterr().err
    assert cli.main(["purchases", "show", "nope"]) == 2


def test_the_other_subcommands_are_intact() -> None:
    parser = cli.build_parser()
    for argv in (
        ["credits", "grant", "--user", str(uuid.uuid4()), "--credits", "1", "--reason", "r"],
        ["credits", "show", "--user", str(uuid.uuid4())],
        ["migrate"],
        ["dev"],
    ):
        assert parser.parse_args(argv).func is not None

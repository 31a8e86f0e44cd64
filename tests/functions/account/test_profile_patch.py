"""Rectification: PATCH /account/me changes what the user may correct, nothing else."""

from __future__ import annotations

import httpx

from izgens.db import Database
from tests.conftest import DevServer
from tests.support.problems import assert_problem
from tests.support.users import make_user


def test_display_name_can_be_set_corrected_and_cleared(
    api: httpx.Client, dev_server: DevServer, db: Database
) -> None:
    user = make_user(db, "p@example.com", profile=False)
    auth = {"Authorization": f"Bearer {dev_server.token(user)}"}
    first = api.patch("/account/me", json={"display_name": "Ana  "}, headers=auth)
    assert first.status_code == 200 and first.json()["display_name"] == "Ana"
    untouched = api.patch("/account/me", json={}, headers=auth).json()
    assert untouched["display_name"] == "Ana"
    cleared = api.patch("/account/me", json={"display_name": ""}, headers=auth).json()
    assert cleared["display_name"] is None
    assert cleared["balance"] == 0 and cleared["email"] == "p@example.com"


def test_only_correctable_fields_are_accepted(
    api: httpx.Client, dev_server: DevServer, db: Database
) -> None:
    user = make_user(db, profile=False)
    auth = {"Authorization": f"Bearer {dev_server.token(user)}"}
    for body in (
        {"balance": 1000},
        {"email": "x@example.com"},
        {"display_name": 5},
        {"display_name": "x" * 81},
        {"age_confirmed": True},
    ):
        response = api.patch("/account/me", json=body, headers=auth)
        assert_problem(response, 422, "invalid_request")
    row = db.one(
        "select balance, display_name, age_confirmed_at from public.profiles where user_id = %s",
        (user,),
    )
    assert row is None or (
        row["balance"] == 0 and row["display_name"] is None and row["age_confirmed_at"] is None
    )
    assert api.patch("/account/me", json={"display_name": "x"}).status_code == 401

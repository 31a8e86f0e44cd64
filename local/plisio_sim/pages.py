"""The page a person pays on (the `invoice_url`), with a button for each outcome."""

from __future__ import annotations

import html
import json
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from izgens_local.plisio_sim.invoices import Sim
from izgens_local.plisio_sim.state import OPEN


class Pages:
    """The invoice page and its buttons, over one simulator's invoices."""

    def __init__(self, sim: Sim) -> None:
        self.sim = sim
        self.state = sim.state

    async def invoice_page(self, request: Request) -> Response:
        txn_id = request.path_params["txn_id"]
        with self.state.lock:
            inv = self.state.invoices.get(txn_id)
            if inv is None:
                return HTMLResponse(_page("Invoice not found", "<p>No such invoice.</p>"), 404)
            view = self.sim.view(inv)
            paid = inv.status in ("completed", "mismatch")
            back = inv.params.get("success_invoice_url" if paid else "fail_invoice_url")
        e = html.escape
        rows = "".join(
            f"<tr><th>{e(label)}</th><td>{e(str(value))}</td></tr>"
            for label, value in (
                ("Order", view["order_name"]),
                ("Order number", view["order_number"]),
                ("Price", f"{view['source_amount']} {view['source_currency']}"),
                ("To pay", f"{view['amount']} {view['currency']}"),
                ("Received", f"{view['paid']} {view['currency']}"),
                ("Status", view["status"]),
            )
        )
        if view["status"] in OPEN:
            buttons = "".join(
                f'<form method="post" action="{e(txn_id)}/pay">'
                f'<input type="hidden" name="status" value="{status}">'
                f'<button type="submit" name="action" value="{status}">{e(label)}</button></form>'
                for status, label in (
                    ("completed", "Pay"),
                    ("mismatch", "Overpay"),
                    ("expired", "Underpay and let expire"),
                    ("cancelled", "Cancel"),
                )
            )
        else:
            buttons = "<p>This invoice is closed.</p>"
        link = (
            f'<p><a href="{e(back)}">To the site</a></p>'
            if back and view["status"] not in OPEN
            else ""
        )
        sent = "".join(
            f"<li>{e(c['status'])} → {e(json.dumps(c.get('response') or c.get('skipped')))}</li>"
            for c in view["callbacks"]
        )
        log = f"<h2>Callbacks</h2><ul>{sent}</ul>" if sent else ""
        content = f"<table>{rows}</table><div class='buttons'>{buttons}</div>{link}{log}"
        return HTMLResponse(_page(f"Invoice {txn_id}", content))

    async def invoice_action(self, request: Request) -> Response:
        txn_id = request.path_params["txn_id"]
        form = dict(parse_qsl((await request.body()).decode("utf-8", "replace")))
        status = form.get("status") or form.get("action") or ""
        code, answer = await self.sim.pay(txn_id, None, status, form.get("amount") or None)
        if code == 404:
            return HTMLResponse(_page("Invoice not found", "<p>No such invoice.</p>"), 404)
        if code != 200:
            message = html.escape(str(answer.get("error")))
            return HTMLResponse(_page("Not possible", f"<p>{message}</p>"), code)
        return RedirectResponse(request.url_for("invoice_page", txn_id=txn_id), 303)


def _page(title: str, content: str) -> str:
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title>"
        "<style>body{font-family:sans-serif;max-width:32rem;margin:2rem auto}"
        "th{text-align:left;padding-right:1rem}form{display:inline-block;margin:.5rem .5rem 0 0}"
        "</style></head>"
        f"<body><h1>{html.escape(title)}</h1><p><em>Plisio simulator</em></p>{content}</body>"
        "</html>"
    )

"""Plisio's records as the shop reads them: invoice and operation, their statuses and what a status means for a purchase, and Plisio's refusals."""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum
from typing import Annotated

from pydantic import (
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
)

from izgens.errors import (
    ProviderRejected,
)

# the signature half lives apart so a callback is verified without importing httpx

__all__ = [
    "CLOSED_UNPAID_STATUSES",
    "Invoice",
    "KNOWN_STATUSES",
    "OPEN_STATUSES",
    "Operation",
    "OperationParams",
    "PAID_STATUSES",
    "PaymentOutcome",
    "PlisioRejected",
    "PlisioStatus",
    "payment_outcome",
]


class PlisioStatus(StrEnum):
    """Invoice statuses Plisio documents (§5.1)."""

    NEW = "new"
    PENDING = "pending"
    PENDING_INTERNAL = "pending internal"
    COMPLETED = "completed"
    MISMATCH = "mismatch"
    EXPIRED = "expired"
    CANCELLED = "cancelled"
    ERROR = "error"
    CANCELLED_DUPLICATE = "cancelled duplicate"


class PaymentOutcome(StrEnum):
    """What a status means for a credits purchase."""

    PAID = "paid"  # credit the pack, once per order
    OPEN = "open"  # keep waiting; money may be on its way
    UNPAID = "unpaid"  # closed without a sale (an `expired` one may hold a partial payment)
    UNKNOWN = "unknown"  # a status Plisio never documented: record it, act on nothing


# `mismatch` is Plisio's word for overpaid: the official plugins credit it like `completed`.
PAID_STATUSES = frozenset({PlisioStatus.COMPLETED, PlisioStatus.MISMATCH})

OPEN_STATUSES = frozenset({PlisioStatus.NEW, PlisioStatus.PENDING, PlisioStatus.PENDING_INTERNAL})

# `cancelled duplicate` is the invoice abandoned when the buyer switched coin: the money, if
# any, is on a sibling invoice of the same order_number, so it never fails the order by itself.
CLOSED_UNPAID_STATUSES = frozenset(
    {
        PlisioStatus.EXPIRED,
        PlisioStatus.CANCELLED,
        PlisioStatus.ERROR,
        PlisioStatus.CANCELLED_DUPLICATE,
    }
)

KNOWN_STATUSES = PAID_STATUSES | OPEN_STATUSES | CLOSED_UNPAID_STATUSES


def payment_outcome(status: str | None) -> PaymentOutcome:
    """Classify a Plisio status exactly as sent; anything undocumented (`_111`, a different
    spelling) is UNKNOWN and never paid."""
    value = status or ""
    if value in PAID_STATUSES:
        return PaymentOutcome.PAID
    if value in OPEN_STATUSES:
        return PaymentOutcome.OPEN
    if value in CLOSED_UNPAID_STATUSES:
        return PaymentOutcome.UNPAID
    return PaymentOutcome.UNKNOWN


def _blank_to_none(value: object) -> object:
    return None if value == "" else value


def _list_to_dict(value: object) -> object:
    # PHP encodes an empty associative array as []
    return {} if value == [] or value is None else value


Amount = Annotated[Decimal | None, BeforeValidator(_blank_to_none)]


class _Model(BaseModel):
    # numbers may come as strings or as JSON numbers; unknown fields are kept in model_extra
    model_config = ConfigDict(extra="allow", coerce_numbers_to_str=True, frozen=True)


class Invoice(_Model):
    """`GET /invoices/new` data. White-label shops add fields; they stay in `model_extra`."""

    txn_id: str
    invoice_url: str
    invoice_total_sum: Amount = None


class OperationParams(_Model):
    """What we sent when creating the invoice, echoed by Plisio."""

    order_number: str | None = None
    order_name: str | None = None
    source_amount: Amount = None
    source_currency: str | None = None
    amount: Amount = None
    currency: str | None = None


class Operation(_Model):
    """`OperationDto`: the server-side truth about one invoice."""

    id: str = Field(validation_alias=AliasChoices("id", "txn_id"))
    status: str
    type: str | None = None
    currency: str | None = None
    psys_cid: str | None = None
    amount: Amount = None
    pending_sum: Amount = None
    actual_sum: Amount = None
    source_currency: str | None = None
    source_rate: Amount = None
    params: Annotated[OperationParams, BeforeValidator(_list_to_dict)] = OperationParams()

    @property
    def order_number(self) -> str | None:
        return self.params.order_number

    @property
    def outcome(self) -> PaymentOutcome:
        return payment_outcome(self.status)


class PlisioRejected(ProviderRejected):
    """Plisio answered with its error envelope (or a bare 4xx): the request will not succeed.

    `fields` holds the per-field messages when Plisio sent them as a JSON string, which it
    does for validation errors.
    """

    def __init__(
        self,
        detail: str,
        *,
        provider_code: str | None = None,
        http_status: int,
        name: str = "",
        fields: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail, provider_code=provider_code)
        self.http_status = http_status
        self.name = name
        self.fields = fields or {}

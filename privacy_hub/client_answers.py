"""The gate's answers as the Python client returns them (privacy_hub/client.py).

Standard library only, like the client.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class CheckResult:
    """One gate decision. ``legal_basis`` and ``valid_until`` are None from batch checks.

    ``event_id``, ``receipt_id``, ``notice_version`` and ``purpose_version`` name the
    consent decision the answer rests on (R-GATE-03): its ledger event, its signed receipt,
    the notice shown and the purpose version; None when it rests on none."""

    customer_id: str
    purpose: str
    allowed: bool
    reason: str
    legal_basis: str | None = None
    valid_until: datetime | None = None
    event_id: str | None = None
    receipt_id: str | None = None
    notice_version: str | None = None
    purpose_version: int | None = None

    @classmethod
    def of_answer(cls, customer_id: str, purpose: str, body: Mapping[str, Any]) -> CheckResult:
        """A single check's answer (``GET /api/v1/consent-check``)."""
        return cls(customer_id=customer_id, purpose=purpose, allowed=body["allowed"] is True,
                   reason=str(body["reason"]), legal_basis=body.get("legal_basis"),
                   valid_until=parse_time(body.get("valid_until")), **_proof(body))

    @classmethod
    def of_batch_item(cls, customer_id: str, purpose: str,
                      item: Mapping[str, Any]) -> CheckResult:
        """One item of a batch check's ``results``."""
        return cls(customer_id=customer_id, purpose=purpose, allowed=item["allowed"] is True,
                   reason=str(item["reason"]), **_proof(item))

    @classmethod
    def denied(cls, customer_id: str, purpose: str, reason: str) -> CheckResult:
        return cls(customer_id=customer_id, purpose=purpose, allowed=False, reason=reason)


def _proof(answer: Mapping[str, Any]) -> dict[str, Any]:
    """The consent decision an answer names (R-GATE-03); None for what it leaves out (an
    older hub)."""
    version = answer.get("purpose_version")
    return {"event_id": _text(answer.get("event_id")),
            "receipt_id": _text(answer.get("receipt_id")),
            "notice_version": _text(answer.get("notice_version")),
            "purpose_version": version if type(version) is int else None}


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def parse_time(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) else None

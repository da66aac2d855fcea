"""Purposes, notices, the consent ledger, processing flags and the gate."""

from consent.gate import Answer, Flags, Reason, Rule, State, Status, decide, effective_status
from consent.ledger import Decision, Ledger, Recorded
from consent.purposes import LegalBasis, Purpose
from consent.receipts import Controller, ReceiptSigner

__all__ = [
    "Answer", "Controller", "Decision", "Flags", "Ledger", "LegalBasis", "Purpose",
    "Reason", "ReceiptSigner", "Recorded", "Rule", "State", "Status", "decide",
    "effective_status",
]

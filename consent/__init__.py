"""Purposes, notices, the consent ledger, processing flags and the gate."""

from consent.gate import Decision as GateDecision
from consent.gate import Flags, Reason, Rule, State, Status, decide, effective_status
from consent.ledger import Decision, Ledger, Recorded
from consent.purposes import LegalBasis, Purpose
from consent.receipts import Controller, ReceiptSigner

__all__ = [
    "Controller", "Decision", "Flags", "GateDecision", "Ledger", "LegalBasis", "Purpose",
    "Reason", "ReceiptSigner", "Recorded", "Rule", "State", "Status", "decide",
    "effective_status",
]

"""The retention table (R-RET-01, Art. 5(1)(e), 13(2)(a), 30(1)(f)): every store of the
hub, how long it keeps what it holds, counted from when, what happens at the end, why,
and the setting that changes it.

This is the one place these periods are stated: the retention pass enforces them
(privacy_hub/usecases/retention.py), ``GET /api/v1/retention-policies`` lists them and the
records of processing quote them. Every table of the database is named by exactly the
rules below; a table that holds no personal data is named too, with the reason it needs
no period (tests/web/test_retention_policies.py fails on a table named nowhere).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from consent.purposes import Purpose
from privacy_hub.config import RETENTION_VARIABLES, Settings

# What happens when the period ends.
DELETE = "delete"
CRYPTO_SHRED = "crypto_shred"
ANONYMISE = "anonymise"
#: kept without a period, for the recorded reason (no personal data, or a DPO justification)
KEEP = "keep"
ACTIONS = (DELETE, CRYPTO_SHRED, ANONYMISE, KEEP)

# Who enforces it.
DAILY_SWEEP = "retention pass"
INACTIVITY = "inactivity erasure (R-RET-02)"

#: where a store's period is set when it is per purpose
PURPOSE_SETTING = "the purpose's retention_days (PATCH /api/v1/purposes/{key})"


@dataclass(frozen=True)
class Rule:
    """One store: its tables, the Settings field of its period (None: no period), from
    when it counts, what happens at the end, and why."""

    store: str
    tables: tuple[str, ...]
    setting: str | None
    counted_from: str
    action: str
    reason: str
    enforced_by: str = DAILY_SWEEP
    #: one policy per purpose (the period is the purpose's retention_days)
    per_purpose: bool = False
    #: per purpose: only the purposes on this legal basis
    legal_basis: str | None = None


@dataclass(frozen=True)
class Policy:
    """A rule as it applies now: the period resolved from the settings or the purpose."""

    store: str
    tables: tuple[str, ...]
    days: int | None
    counted_from: str
    action: str
    reason: str
    enforced_by: str
    config_variable: str | None
    configured_by: str | None
    purpose: str | None = None

    @property
    def id(self) -> str:
        return self.store if self.purpose is None else f"{self.store}:{self.purpose}"

    @property
    def period(self) -> str | None:
        """The period as an ISO 8601 duration, e.g. ``P1095D``."""
        return None if self.days is None else f"P{self.days}D"

    def public(self) -> dict[str, Any]:
        return {"id": self.id, "store": self.store, "tables": list(self.tables),
                "purpose": self.purpose, "days": self.days, "period": self.period,
                "counted_from": self.counted_from, "action": self.action,
                "reason": self.reason, "enforced_by": self.enforced_by,
                "config_variable": self.config_variable, "configured_by": self.configured_by}


_VARIABLES = {**RETENTION_VARIABLES,
              "consent_proof_retention_days": "PRIVACY_HUB_CONSENT_PROOF_RETENTION_DAYS",
              "inactivity_days": "PRIVACY_HUB_INACTIVITY_DAYS"}

RULES: tuple[Rule, ...] = (
    Rule("customer_profiles",
         ("customers", "customer_statements", "customer_tc_strings", "keystore_customer_keys"),
         "inactivity_days", "the customer's last purchase, sign-in, consent or request",
         CRYPTO_SHRED,
         "Art. 5(1)(e), R-RET-02: a profile nobody has used for this long is erased by "
         "destroying the customer's key, after a mail giving 30 days to say no. While the "
         "customer is active the profile is kept as long as the longest running purpose "
         "needs it; an erasure request shreds it at once.", INACTIVITY),
    Rule("customer_events", ("customer_events",), None,
         "the event's occurred_at", DELETE,
         "Art. 5(1)(e): an interaction event is kept for the retention period of the purpose "
         "it was collected for, then deleted.", per_purpose=True),
    Rule("legal_retention", ("retained_records",), None,
         "the erasure of the profile", CRYPTO_SHRED,
         "Art. 17(3)(b): data under a legal duty (a legal_obligation purpose) outlives the "
         "erasure of the profile, restricted, until the duty ends; then it and its key are "
         "destroyed (the retention_purge job at the end of the hold; the pass catches any "
         "it missed).", per_purpose=True, legal_basis="legal_obligation"),
    Rule("consent_evidence", ("consent_evidence",), "consent_proof_retention_days",
         "the end of the consent it proves (superseded, withdrawn, refused or expired)",
         DELETE,
         "R-CREC-06: the evidence of a decision (hashed address, user agent, page, signals) "
         "proves a consent while it is in force and for the limitation period after "
         "(3 years, § 195 BGB); the ciphertext is then dropped, the row keeps its SHA-256 "
         "and the date. An erasure drops it at once."),
    Rule("consent_records",
         ("consent_events", "consent_receipts", "consent_state", "processing_flags",
          "objections", "flag_events", "customer_relationships"),
         "inactivity_days", "as the profile: they name only its random id", ANONYMISE,
         "Art. 7(1), 21: the decisions, receipts, flags and objections prove what the "
         "customer decided and are what the gate answers from; they hold no identifying "
         "data, only the customer's random id. When the profile is crypto-shredded that id "
         "links to no one and the rows are anonymous; they stay so that the hash-chained "
         "audit log and receipts already handed out still verify.", INACTIVITY),
    Rule("dsar_records", ("requests", "request_history", "request_systems"),
         "retention_requests_days", "the request's closing (completed, rejected or cancelled)",
         DELETE,
         "Art. 5(2), 12: proof that each request was answered in time and how. Three years, "
         "the regular limitation period (§ 195 BGB) for a claim about how a request was "
         "handled (Art. 82); the record goes with its history, the systems' reports and "
         "what is left of its export."),
    Rule("exports", ("exports",), "retention_exports_days", "the export's creation", DELETE,
         "Art. 15(3), 20: the answer to an access or portability request, encrypted; the "
         "file and its key are deleted once the subject had time to fetch it (its link "
         "works 7 days)."),
    Rule("verification_tokens",
         ("request_verification_tokens", "consent_confirmation_tokens", "portal_sign_in_links"),
         "retention_tokens_days", "the token's expiry or use, whichever came first", DELETE,
         "Single-use links (request verification, double opt-in, portal sign-in), kept only "
         "as hashes; a short grace after they stopped working explains a late click, then "
         "they are deleted."),
    Rule("webhook_deliveries", ("outbox_jobs",), "retention_outbox_days",
         "the delivery (a cancelled or dead delivery: its queuing)", DELETE,
         "Art. 19: the record that each downstream system was told; its payload is dropped "
         "when delivered, the row is deleted after the period."),
    Rule("mail_outbox", ("outbox_jobs",), "retention_outbox_days",
         "the sending (a cancelled or dead mail: its queuing); a file in the instance's "
         "outbox folder: its writing", DELETE,
         "Mails to customers and the DPO and, on the embedded default, the files written "
         "to <instance>/outbox/ instead of sending (they hold addresses and links)."),
    Rule("background_jobs", ("outbox_jobs",), "retention_outbox_days",
         "the job's end (cancelled or dead: its queuing)", DELETE,
         "Other finished background work (retention holds, export deletion, reminders), "
         "kept for inspection, then deleted."),
    Rule("check_log", ("consent_checks",), "retention_check_log_days", "the check", DELETE,
         "R-GATE-08: who asked about whom, for what, and the answer; a year answers "
         "questions about a campaign or a complaint, and each batch's digest stays in the "
         "audit log."),
    Rule("idempotency_records", ("idempotency_records",), "retention_idempotency_days",
         "the first response", DELETE,
         "A write's first response, so a retry with the same Idempotency-Key changes "
         "nothing; clients retry within minutes, a week covers an outage."),
    Rule("banner_choices", ("banner_choices",), "retention_banner_choices_days",
         "the choice's expiry (the visitor is asked again then)", DELETE,
         "ePrivacy Art. 5(3), Art. 7(1): proof of a visitor's cookie choice while it counts "
         "and for the limitation period after (3 years, § 195 BGB)."),
    Rule("audit_log", ("audit_entries",), "retention_audit_days", "the entry", DELETE,
         "Art. 5(2) accountability, recorded justification: the log proves every other "
         "deletion, consent and request, so it is kept longest: six years, the keeping "
         "period of business letters (§ 257 HGB), which also covers the three-year "
         "limitation period counted from the end of a year. Entries go only below a signed "
         "checkpoint, so the rest of the chain still verifies."),
    Rule("suppression_list", ("suppression_list",), None,
         "(no period)", KEEP,
         "R-ERASE-05, Art. 17, 21(3), recorded justification: an erasure or an objection to "
         "direct marketing must hold for as long as the shop markets, or a re-import "
         "would resurrect the address; the list holds only a keyed hash, a date and a "
         "reason, no customer id."),
    Rule("registries",
         ("purposes", "purpose_versions", "notices", "systems", "consent_receipt_keys"),
         None, "(no period)", KEEP,
         "No personal data: the purposes and their history, the notices, the registered "
         "systems and the receipt keys' public halves, which receipts and the records of "
         "processing are read against."),
    Rule("keys_and_chain",
         ("audit_head", "audit_checkpoints", "keystore_keks", "keystore_hub_keys",
          "scheduled_runs"),
         None, "(no period)", KEEP,
         "No personal data: the audit chain's head and signed checkpoints, the wrapped "
         "key-encryption and hub keys, when scheduled work last ran."),
    Rule("staff", ("staff",), None, "(no period)", KEEP,
         "Staff accounts (employees' sign-in data, not customers'): kept while the account "
         "exists and removed with it; the audit log names staff by id only."),
)


def policies(settings: Settings, purposes: Iterable[Purpose]) -> list[Policy]:
    """Every rule as it applies now, per-purpose rules once for each purpose they cover."""
    known = sorted(purposes, key=lambda p: p.key)
    out: list[Policy] = []
    for rule in RULES:
        if not rule.per_purpose:
            days = None if rule.setting is None else int(getattr(settings, rule.setting))
            variable = None if rule.setting is None else _VARIABLES[rule.setting]
            out.append(Policy(rule.store, rule.tables, days, rule.counted_from, rule.action,
                              rule.reason, rule.enforced_by, variable, variable))
            continue
        for p in known:
            if rule.legal_basis is None or str(p.legal_basis) == rule.legal_basis:
                out.append(Policy(rule.store, rule.tables, p.retention_days,
                                  rule.counted_from, rule.action, rule.reason,
                                  rule.enforced_by, None, PURPOSE_SETTING, purpose=p.key))
    return out


def tables_named() -> set[str]:
    """Every table some rule names."""
    return {table for rule in RULES for table in rule.tables}


def purpose_retention(found: Iterable[Policy], purpose: str) -> str:
    """The records of processing's ``retention`` of one purpose's activity, from the table:
    what is kept for it, how long, and what happens then."""
    parts = []
    for p in found:
        if p.purpose == purpose and p.store == "customer_events":
            parts.append(f"interaction events: {p.days} days after they occurred, then deleted")
        elif p.purpose == purpose and p.store == "legal_retention":
            parts.append(f"data under the legal duty: {p.days} days after the profile's "
                         "erasure, then crypto-shredded")
        elif p.purpose is None and p.store == "customer_profiles":
            parts.append(f"profile: crypto-shredded after {p.days} days without activity, "
                         "kept meanwhile as long as the longest running purpose needs it")
    return "; ".join(parts)

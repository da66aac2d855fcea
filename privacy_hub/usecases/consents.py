"""Consent decisions: record one or a batch, current state, history, receipts,
double opt-in confirmation and one-click unsubscribe links."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.orm import Session

import audit
from consent import ledger_reads, suppression
from consent import purposes as registry
from consent.errors import InvalidInput, UnknownPurpose
from consent.ledger import Decision, Recorded
from consent.models import ConfirmationToken, ConsentEvent
from consent.proof import Seal
from privacy_hub.hub import Hub
from privacy_hub.jobs import grouped_outbox
from privacy_hub.unsubscribe import InvalidLink, make_token, read_token
from privacy_hub.usecases.access import PurposeFilter, any_purpose, require_purpose
from privacy_hub.usecases.customers import canonical_id
from privacy_hub.usecases.errors import Conflict, NotFound, group_committed
from privacy_hub.vault import activity, tc_strings
from privacy_hub.vault.errors import CustomerNotFound
from privacy_hub.vault.service import HotPath


def _hash_ip(hub: Hub, session: Session, address: str) -> str:
    key = hub.keyring.hub_key(session, "app_secrets")
    return hmac.new(key, b"ip|" + address.encode(), hashlib.sha256).hexdigest()[:32]


def decision(hub: Hub, session: Session | None, fields: Mapping[str, Any], *, source: str,
             gpc: bool, may_use: PurposeFilter = any_purpose) -> Decision:
    """A decision from its loaded fields: `source` when it names none, the client address
    kept only as a keyed hash (which needs ``session``), a GPC signal added to its evidence."""
    require_purpose(may_use, fields["purpose"])
    evidence = dict(fields.get("evidence") or {})
    if "ip_address" in evidence:
        assert session is not None  # noqa: S101 (callers pass one with an address)
        evidence["ip_hash"] = _hash_ip(hub, session, evidence.pop("ip_address"))
    if gpc:
        evidence["gpc"] = True
    return Decision(
        purpose=fields["purpose"], granted=fields["granted"],
        source=fields.get("source") or source,
        collection_method=fields["collection_method"],
        notice_version=fields.get("notice_version"), notice_language=fields["language"],
        collected_at=fields.get("collected_at"), consent_type=fields["consent_type"],
        evidence=evidence, locale=_page_language(fields))


def _page_language(fields: Mapping[str, Any]) -> str | None:
    """The language the person read when deciding (a double opt-in mail is sent in it): the
    portal's page language, else the language of the notice a service says was shown. The
    API's default "en" without a notice is no such statement, so the profile decides."""
    if fields.get("locale"):
        return str(fields["locale"])
    return str(fields["language"]) if fields.get("notice_version") else None


def consenting_customer(hub: Hub, customer_id: str, *, key: bool = False
                        ) -> tuple[bool, Seal | None]:
    """Refuse an unknown or erased customer. Read before the caller's transaction starts
    (on SQLite, a write transaction holds the database's write lock from its first
    statement), status and flag only, no ORM row. Returns whether a suppression
    (R-ERASE-05) applies to them, which a grant may lift, and, with ``key``, a sealer for
    the decision's evidence under the customer's key from the same read, where it can
    (else None)."""
    standing, seal = hub.proof.standing_and_sealer(hub.engine, customer_id, key=key)
    if standing is None:
        raise CustomerNotFound(customer_id)
    status, suppressed = standing
    if status == "erased":
        raise Conflict("This customer was erased; no consent can be recorded for them.",
                       type_="customer-erased")
    return suppressed, seal


def _lift_suppression(hub: Hub, session: Session, customer_id: str,
                      made: Sequence[tuple[str, Recorded]], actor: audit.Actor) -> None:
    """R-ERASE-05: a fresh consent to direct marketing of the customer's own
    (consent.suppression.lifts_suppression; ``made``: each decision's collection method
    and what was recorded) lifts a suppression: flag cleared, their entries deleted."""
    granted = [(method, r) for method, r in made if r.status == "granted"]
    if not granted or hub.vault.suppression is None \
            or not suppression.is_suppressed(session, customer_id):
        return
    for method, r in granted:
        if suppression.lifts_suppression(registry.get(session, r.purpose), r.status, method):
            row = hub.vault.get_row(session, customer_id)
            identifiers = hub.vault.profile(session, row, only=["email", "phone"])
            hub.vault.suppression.lift(session, customer_id, identifiers, actor=actor,
                                       consent_event_id=r.id)
            return


def record_grouped(hub: Hub, hot: HotPath, customer_id: str, fields: Mapping[str, Any], *,
                   actor: audit.Actor, source: str, gpc: bool,
                   may_use: PurposeFilter = any_purpose) -> dict[str, Any] | None:
    """The hot path: one decision in a short group-committed transaction (the event, the
    state, the receipt, the audit entry and the outbox rows). None, having changed nothing,
    when it needs a session of its own (record, with ``customer_checked``)."""
    # Evidence is sealed under the customer's key, read with their status: no extra read.
    suppressed, seal = consenting_customer(hub, customer_id, key=bool(fields.get("evidence")))
    if suppressed and fields["granted"]:
        return None  # a grant may lift the customer's suppression: record() does that
    made = decision(hub, None, fields, source=source, gpc=gpc, may_use=may_use)

    def work(conn: Connection, shared: dict[str, Any]) -> tuple[Any, list[Any]]:
        done = hub.ledger.record_on(conn, shared, customer_id, made, actor=actor, seal=seal)
        if done is None:
            return (None, False), []
        recorded, entry, event = done
        activity.touch_on(conn, customer_id, recorded.recorded_at)  # R-RET-02
        return (recorded, grouped_outbox.write_events(hub.sessions, conn, shared, [event])), [entry]

    grouped: Recorded | None
    with group_committed():
        grouped, wrote_jobs = hot.writer.run(work)
    if wrote_jobs:
        grouped_outbox.jobs_written()
    return None if grouped is None else grouped.public()


def record(hub: Hub, session: Session, customer_id: str, fields: Mapping[str, Any], *,
           actor: audit.Actor, source: str, gpc: bool, may_use: PurposeFilter = any_purpose,
           customer_checked: bool = False) -> dict[str, Any]:
    """Record one decision with its proof; returns the recorded event."""
    if not customer_checked:
        consenting_customer(hub, customer_id)
    made = decision(hub, session, fields, source=source, gpc=gpc, may_use=may_use)
    recorded = hub.ledger.record(session, customer_id, made, actor=actor)
    activity.touch(session, customer_id, recorded.recorded_at)  # R-RET-02
    _lift_suppression(hub, session, customer_id, [(made.collection_method, recorded)], actor)
    return recorded.public()


def record_many(hub: Hub, session: Session, customer_id: str,
                many: Sequence[Mapping[str, Any]], *, actor: audit.Actor, source: str,
                gpc: bool, may_use: PurposeFilter = any_purpose,
                invalid: Mapping[int, Mapping[str, list[str]]] | None = None
                ) -> list[dict[str, Any]]:
    """Record decisions atomically: all of them, or none. ``invalid`` holds, by index, the
    errors of decisions the caller could not load (``many`` has what of them did load);
    every bad decision is named in one InvalidInput, ``decisions.<index>.<field>``,
    whatever made it bad, and then nothing is recorded."""
    consenting_customer(hub, customer_id)
    invalid = invalid or {}
    errors: dict[str, list[str]] = {}
    decisions = []
    for i, fields in enumerate(many):
        if i in invalid:
            found = dict(invalid[i])
            if isinstance(fields.get("purpose"), str):
                require_purpose(may_use, fields["purpose"])
                found.update(_named(i, hub.ledger.purpose_problems(session, fields["purpose"])))
        else:
            made = decision(hub, session, fields, source=source, gpc=gpc, may_use=may_use)
            decisions.append(made)
            found = _named(i, hub.ledger.problems(session, made))
        for name, messages in found.items():
            errors.setdefault(name, []).extend(m for m in messages
                                               if m not in errors.get(name, []))
    if errors:
        raise InvalidInput(errors)
    recorded = hub.ledger.record_many(session, customer_id, decisions, actor=actor)
    if recorded:
        activity.touch(session, customer_id, recorded[-1].recorded_at)  # R-RET-02
    _lift_suppression(hub, session, customer_id,
                      [(d.collection_method, r) for d, r in zip(decisions, recorded, strict=True)],
                      actor)
    return [r.public() for r in recorded]


def _named(index: int, errors: Mapping[str, list[str]]) -> dict[str, list[str]]:
    """A decision's field errors as the batch names them: ``decisions.<index>.<field>``."""
    return {f"decisions.{index}.{name}": list(messages) for name, messages in errors.items()}


def current_state(hub: Hub, session: Session, customer_id: str, *,
                  may_use: PurposeFilter = any_purpose) -> list[dict[str, Any]]:
    """The current state for every purpose the caller may see."""
    hub.vault.get_row(session, customer_id)
    return [i for i in ledger_reads.current_states(session, customer_id) if may_use(i["purpose"])]


def history(hub: Hub, session: Session, customer_id: str, *,
            may_use: PurposeFilter = any_purpose) -> list[dict[str, Any]]:
    """Every recorded decision, oldest first, for the purposes the caller may see."""
    hub.vault.get_row(session, customer_id)
    return [i for i in ledger_reads.history(session, customer_id, hub.proof)
            if may_use(i["purpose"])]


def event(hub: Hub, session: Session, customer_id: str, event_id: str, *,
          may_use: PurposeFilter = any_purpose) -> dict[str, Any]:
    """One ledger event of this customer (they are never changed or deleted)."""
    for item in ledger_reads.history(session, customer_id, hub.proof):
        if item["id"] == event_id and may_use(item["purpose"]):
            return item
    raise NotFound("No such consent event for this customer.")


def receipt(session: Session, receipt_id: str, *,
            may_use: PurposeFilter = any_purpose) -> dict[str, Any]:
    """A signed consent receipt (Kantara v1.1 / ISO/IEC TS 27560) and its JWS."""
    row = ledger_reads.receipt(session, receipt_id)
    if row is None:
        raise NotFound("No receipt with this id.")
    payload = json.loads(row.payload)
    require_purpose(may_use, payload.get("iso27560", {}).get("purpose_id", ""))
    return {"receipt_id": row.id, "receipt": payload, "jws": row.jws}


def confirm(hub: Hub, session: Session, token: str) -> dict[str, Any]:
    """Double opt-in: the customer confirmed with the emailed token."""
    recorded = hub.ledger.confirm(session, token)
    event = session.get(ConsentEvent, recorded.id)
    if event is not None:
        activity.touch(session, event.customer_id, recorded.recorded_at)  # R-RET-02
        _lift_suppression(hub, session, event.customer_id,
                          [(event.collection_method, recorded)],
                          audit.Actor("customer", event.customer_id))
    return recorded.public()


def unsubscribe_link(hub: Hub, session: Session, customer_id: str, purpose: str, *,
                     may_use: PurposeFilter = any_purpose) -> dict[str, str]:
    """A one-click unsubscribe link for a marketing message (ePrivacy Art. 13(2))."""
    require_purpose(may_use, purpose)
    registry.get(session, purpose)
    customer_id = canonical_id(customer_id)
    hub.vault.get_row(session, customer_id)
    token = make_token(hub.keyring.hub_key(session, "app_secrets"), customer_id, purpose)
    url = f"{hub.settings.base_url}/unsubscribe/{token}"
    return {"url": url, "list_unsubscribe": f"<{url}>",
            "list_unsubscribe_post": "List-Unsubscribe=One-Click"}


# -- IAB TCF TC strings (R-SIG-03): the CMP's string, stored verbatim ----------------------
def store_tc_string(hub: Hub, session: Session, customer_id: str, tc_string: str, *,
                    collected_at: datetime | None, actor: audit.Actor) -> dict[str, Any]:
    """Store the TC string a CMP produced for this customer, sealed under their key."""
    return tc_strings.store(hub.vault, session, customer_id, tc_string,
                            collected_at=collected_at, actor=actor)


def latest_tc_string(hub: Hub, session: Session, customer_id: str, *,
                     actor: audit.Actor) -> dict[str, Any]:
    """The newest stored TC string, byte-identical (audited); NotFound when none is stored
    or the customer was erased."""
    found = tc_strings.latest(hub.vault, session, customer_id, actor=actor)
    if found is None:
        raise NotFound("No TC string is stored for this customer.")
    return found


def tc_string_history(hub: Hub, session: Session, customer_id: str, *,
                      actor: audit.Actor) -> list[dict[str, Any]]:
    """Every stored TC string, oldest first (audited); empty once the customer was erased."""
    return tc_strings.history(hub.vault, session, customer_id, actor=actor)


# -- the customer's own links (no login) ----------------------------------------------------
def unsubscribe_target(hub: Hub, session: Session, token: str,
                       language: str | None = None) -> tuple[str, str, str] | None:
    """What a one-click unsubscribe link is for: (customer id, purpose, purpose title in
    ``language``); None for a link that is not valid."""
    try:
        customer_id, purpose = read_token(hub.keyring.hub_key(session, "app_secrets"), token)
        title = registry.get(session, purpose).text(language).title
    except (InvalidLink, UnknownPurpose):
        return None
    return customer_id, purpose, title


def unsubscribe(hub: Hub, session: Session, customer_id: str, purpose: str) -> None:
    """The customer withdrew through the link in a message: recorded as their decision.
    Nothing to record for a customer erased or unknown since."""
    try:
        row = hub.vault.get_row(session, customer_id)
    except CustomerNotFound:
        return
    if row.status != "erased":
        recorded = hub.ledger.record(session, customer_id, Decision(
            purpose=purpose, granted=False, source="unsubscribe_link",
            collection_method="email_unsubscribe"), actor=audit.Actor("customer", customer_id))
        activity.touch(session, customer_id, recorded.recorded_at)  # R-RET-02


def pending_confirmation(session: Session, token: str,
                         language: str | None = None) -> str | None:
    """The title (in ``language``) of the purpose a double opt-in token would confirm;
    None if the token is unknown or used."""
    row = session.get(ConfirmationToken, hashlib.sha256(token.encode()).digest())
    if row is None or row.used_at is not None:
        return None
    return registry.get(session, row.purpose).text(language).title


def purpose_title(session: Session, purpose: str, language: str | None = None) -> str:
    """The title customers see for a purpose, in ``language`` where it is published."""
    return registry.get(session, purpose).text(language).title

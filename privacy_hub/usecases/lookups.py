"""Staff look a customer up for a stated reason, then read their file: consents, history,
requests and (for roles that may) the decrypted profile.

Art. 5(1)(b), 5(2), 32(4) GDPR: staff see a customer's data for a purpose they name, and
the log shows who looked whom up and why. The reason goes into the audit entry; the
searched email or phone number never does (only the customer id and how it was found).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

import audit
from privacy_hub.hub import Hub
from privacy_hub.usecases import consents, customers, subject
from privacy_hub.usecases.errors import Invalid, NotFound
from privacy_hub.vault.errors import CustomerNotFound, InvalidCustomerData

#: why a staff member looks a customer up (the audit entry's ``reason_category``)
REASON_CATEGORIES: tuple[str, ...] = ("data_subject_request", "complaint",
                                      "authority_inquiry", "other")
#: a reason says something: at least this many words
MIN_REASON_WORDS = 3
MAX_REASON_LENGTH = 500

#: what check_reason and look_up answer, field by field (the console translates them)
NO_CATEGORY = "Choose why you look this customer up."
TOO_SHORT = "Describe the reason in at least three words."
TOO_LONG = "Keep the reason under 500 characters."
ADDRESS_IN_REASON = ("Leave email addresses out of the reason: name the ticket or request "
                     "number instead.")
BAD_EMAIL = "This is not a valid email address."
BAD_PHONE = ("This is neither an email address nor a phone number with its country code "
             "(+49 …).")


def check_reason(category: str, text: str) -> dict[str, str]:
    """The reason as the audit entry holds it; Invalid naming the field that falls short."""
    errors: dict[str, list[str]] = {}
    if category not in REASON_CATEGORIES:
        errors["reason_category"] = [NO_CATEGORY]
    words = text.split()
    if len(words) < MIN_REASON_WORDS:
        errors["reason_text"] = [TOO_SHORT]
    elif len(text) > MAX_REASON_LENGTH:
        errors["reason_text"] = [TOO_LONG]
    elif "@" in text:
        # R-AUD-02: the audit log holds no personal data; an address belongs in the search.
        errors["reason_text"] = [ADDRESS_IN_REASON]
    if errors:
        raise Invalid("The reason is missing or too short.", errors=errors)
    return {"reason_category": category, "reason": " ".join(words)}


def look_up(hub: Hub, session: Session, identifier: str, *, reason_category: str,
            reason_text: str, actor: audit.Actor) -> list[str]:
    """Ids of the customers with exactly this email address (it has an "@") or phone number,
    through the blind index, audited with the reason. Invalid for a bad reason or value."""
    reason = check_reason(reason_category, reason_text)
    kind = "email" if "@" in identifier else "phone"
    try:
        return customers.lookup(hub, session, {kind: identifier.strip()}, actor=actor,
                                reason=reason)
    except InvalidCustomerData:
        message = BAD_EMAIL if kind == "email" else BAD_PHONE
        raise Invalid(message, errors={"identifier": [message]}) from None


def open_by_id(hub: Hub, session: Session, customer_id: str, *, reason_category: str,
               reason_text: str, actor: audit.Actor) -> str:
    """Open a customer's file by id (a link, a request) for a stated reason, audited as a
    look-up is; NotFound if no customer has this id."""
    reason = check_reason(reason_category, reason_text)
    try:
        cid = customers.canonical_id(customer_id)
        row = hub.vault.get_row(session, cid)
    except CustomerNotFound:
        raise NotFound("No customer has this id.") from None
    audit.record(session, actor=actor, action="customer.looked_up", customer_id=row.id,
                 details={**reason, "by": "id", "matches": 1})
    return row.id


def customer_file(hub: Hub, session: Session, customer_id: str, *, personal: bool,
                  actor: audit.Actor) -> dict[str, Any]:
    """What staff see of a customer: status, consents per purpose, the consent history
    (newest first) and requests; the decrypted profile only with ``personal`` (audited as
    the API's read is). NotFound if no customer has this id."""
    try:
        cid = customers.canonical_id(customer_id)
        if personal:
            profile = customers.read(hub, session, cid, actor=actor)
        else:
            row = hub.vault.get_row(session, cid)
            profile = {"id": row.id, "status": hub.vault.status(session, row)}
    except CustomerNotFound:
        raise NotFound("No customer has this id.") from None
    history = subject.history(session, cid)
    return {"customer": profile,
            "consents": consents.current_state(hub, session, cid),
            "history": history["events"], "titles": history["titles"],
            "requests": subject.requests(session, cid)}


def receipt(session: Session, customer_id: str, receipt_id: str) -> dict[str, Any]:
    """A signed receipt of one of this customer's decisions, with its JWS."""
    return subject.receipt(session, customer_id, receipt_id)

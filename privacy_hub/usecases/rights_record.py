"""How the hub handles data subject requests, as the records of processing state it
(Art. 30(1), 5(2)): how identity is verified, that no copy of an identity document is
ever asked for or kept (R-DSAR-04), that requests are free (Art. 12(5)), and the
deadlines with the holiday calendar in force (Art. 12(3))."""

from __future__ import annotations

from typing import Any

from dsar.deadlines import WorkingDays

IDENTITY_VERIFICATION = (
    "email_link: a single-use link, signed and expiring, sent to the email address the "
    "hub holds for the customer",
    "portal_session: the customer is signed in to the privacy portal",
    "staff_recorded_method: a staff member verifies the identity another way (e.g. a call "
    "back on the phone number the hub holds) and records only the name of the method",
)
IDENTITY_DOCUMENTS = (
    "The hub never asks for, receives or stores copies of identity documents. Identity "
    "is verified by the emailed link, a signed-in portal session, or the method a staff "
    "member records; a request has no field for a document and no upload "
    "(Art. 5(1)(c), 11, 12(6) GDPR).")
FEES = (
    "None. Requests are free of charge: the hub has no fee or payment step. A manifestly "
    "unfounded or excessive request is refused, with its ground and a justification the "
    "subject is told, never charged for (Art. 12(4), 12(5) GDPR).")
UNIDENTIFIED = (
    "A request for an email address no customer has gets the same answer as any other; "
    "only the mailbox's owner is told that no account was found and invited to ask again "
    "with another address, a phone number or an order number. Without an answer the "
    "request is rejected (identity_not_found) after 30 days (Art. 11(2), 12(2) GDPR).")


def request_handling(working_days: WorkingDays) -> dict[str, Any]:
    """The records' section on data subject requests."""
    return {
        "identity_verification": list(IDENTITY_VERIFICATION),
        "identity_documents": IDENTITY_DOCUMENTS,
        "fees": FEES,
        "deadline": (
            "One calendar month from receipt, extendable by at most two further months "
            "with reasons told to the subject; a deadline on a Saturday, a Sunday or a "
            f"public holiday (calendar in force: {working_days.name}) moves to the next "
            "working day "
            "(Art. 12(3) GDPR, Reg. 1182/71 Art. 3(4))."),
        "unidentified_requests": UNIDENTIFIED,
    }

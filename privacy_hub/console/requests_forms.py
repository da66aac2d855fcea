"""The request queue's filters and the actions on a request (Flask-WTF forms)."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import IntegerField, SelectField, TextAreaField
from wtforms.validators import DataRequired, Length, NumberRange, Optional

from dsar.workflow import RejectionGround, RequestStatus, RequestType

#: how staff may have verified a requester's identity (the API's free-form ``method``).
#: R-DSAR-03/04: an identity document is never the default, only after a reasonable doubt,
#: and only shown in person: the hub keeps the method's name, never a copy.
VERIFICATION_METHODS = (
    ("known_address_reply", _l("Reply from the email address we hold")),
    ("callback_known_number", _l("Call back on the phone number we hold")),
    ("in_person", _l("In person, known to us")),
    ("id_document_seen", _l("Identity document shown in person, no copy kept (only after a reasonable doubt)")),
)


def rejection_grounds() -> dict[str, str]:
    """Each ground of a rejection (dsar.workflow.RejectionGround) for staff, with its article."""
    return {"manifestly_unfounded": str(_l("Manifestly unfounded (Art. 12(5))")),
            "excessive": str(_l("Excessive, in particular repetitive (Art. 12(5))")),
            "identity_not_confirmed": str(_l("Identity not confirmed (Art. 12(6))")),
            "identity_not_found": str(_l("Nobody identified from the details given "
                                         "(Art. 11(2))")),
            "other": str(_l("Another ground (explain it in the reason)"))}


def type_names() -> dict[str, str]:
    """Each request type's name for people (with its article of the GDPR)."""
    return {"access": str(_l("Access (Art. 15)")),
            "portability": str(_l("Portability (Art. 20)")),
            "erasure": str(_l("Erasure (Art. 17)")),
            "rectification": str(_l("Rectification (Art. 16)")),
            "restriction": str(_l("Restriction (Art. 18)")),
            "objection": str(_l("Objection (Art. 21)"))}


def status_names() -> dict[str, str]:
    """Each status's name for people."""
    return {"pending_verification": str(_l("Awaiting verification")),
            "verified": str(_l("Verified")), "processing": str(_l("In progress")),
            "completed": str(_l("Completed")), "rejected": str(_l("Rejected")),
            "cancelled": str(_l("Cancelled"))}


def _type_choices() -> list[tuple[str, str]]:
    return [("", str(_l("Any type")))] + [(str(t), type_names()[str(t)]) for t in RequestType]


def _status_choices() -> list[tuple[str, str]]:
    return ([("", str(_l("Any status"))), ("open", str(_l("Open (not yet over)")))]
            + [(str(s), status_names()[str(s)]) for s in RequestStatus])


def _due_choices() -> list[tuple[str, str]]:
    return [("", str(_l("Any due date"))), ("overdue", str(_l("Overdue"))),
            ("week", str(_l("Due within 7 days")))]


class QueueFilterForm(FlaskForm):  # type: ignore[misc]
    """The queue's filters: a GET form, so no CSRF token, and no personal data in it."""

    class Meta:
        csrf = False

    type = SelectField(_l("Type"), choices=_type_choices, default="")
    status = SelectField(_l("Status"), choices=_status_choices, default="")
    due = SelectField(_l("Due"), choices=_due_choices, default="")
    page = IntegerField(_l("Page"), validators=[Optional(), NumberRange(min=1, max=100000)])


class VerifyForm(FlaskForm):  # type: ignore[misc]
    method = SelectField(_l("How was the identity verified?"),
                         choices=lambda: [(k, str(v)) for k, v in VERIFICATION_METHODS],
                         validators=[DataRequired(_l("Choose how the identity was verified"))])


class ExtendForm(FlaskForm):  # type: ignore[misc]
    months = SelectField(_l("Extend by"), coerce=int,
                         choices=lambda: [(1, str(_l("1 month"))), (2, str(_l("2 months")))],
                         validators=[DataRequired(_l("Choose 1 or 2 months"))])
    reason = TextAreaField(_l("Reason for the extension (the subject is told)"), validators=[
        DataRequired(_l("Enter the reason: the subject must be told why (Art. 12(3) GDPR)")),
        Length(max=2000)])


class RejectForm(FlaskForm):  # type: ignore[misc]
    # The API defaults to "other" for callers written before grounds existed; a DPO here
    # always says which ground applies.
    ground = SelectField(_l("Ground for the rejection"), choices=lambda: [
        ("", str(_l("Choose a ground")))] + [(str(g), rejection_grounds()[str(g)])
                                            for g in RejectionGround],
        default="", validators=[DataRequired(_l("Choose the ground for the rejection"))])
    reason = TextAreaField(_l("Reason for the rejection (the subject is told)"), validators=[
        DataRequired(_l("Enter the reason: the subject must be told why (Art. 12(4) GDPR)")),
        Length(max=2000)])


class CloseForm(FlaskForm):  # type: ignore[misc]
    note = TextAreaField(_l("Why is the request complete?"), validators=[
        DataRequired(_l("Enter a note saying why the request is complete")),
        Length(max=2000)])

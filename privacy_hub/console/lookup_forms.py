"""The forms of the customer look-up and the audit log's filter (Flask-WTF)."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import IntegerField, RadioField, SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length, NumberRange, Optional

from audit.record import ACTOR_KINDS
from privacy_hub.usecases.lookups import MAX_REASON_LENGTH, REASON_CATEGORIES

#: seq is a BIGINT: a larger number cannot be bound
MAX_SEQ = 2**63 - 1


def reason_choices() -> list[tuple[str, str]]:
    """The reason categories, in the page's language."""
    labels = {"data_subject_request": _l("A data subject request"),
              "complaint": _l("A complaint by the customer"),
              "authority_inquiry": _l("An inquiry by a supervisory authority"),
              "other": _l("Something else (say what below)")}
    return [(key, str(labels[key])) for key in REASON_CATEGORIES]


class ReasonForm(FlaskForm):  # type: ignore[misc]
    """Why a customer is looked up: asked first, audited with the look-up."""

    reason_category = RadioField(_l("Why do you look this customer up?"), choices=reason_choices,
                                 validators=[DataRequired(_l("Choose why you look this customer up."))])
    reason_text = TextAreaField(_l("The reason in a few words"), validators=[
        DataRequired(_l("Describe the reason in at least three words.")),
        Length(max=MAX_REASON_LENGTH)], render_kw={"rows": 2})


class LookupForm(ReasonForm):
    """The reason, then the customer's email address or phone number (posted, never in a URL)."""

    identifier = StringField(_l("Email address or phone number"), validators=[
        DataRequired(_l("Enter the customer's email address or phone number")),
        Length(max=320)], render_kw={"autocomplete": "off", "spellcheck": "false"})


def _actor_choices() -> list[tuple[str, str]]:
    labels = {"staff": _l("Staff"), "customer": _l("Customer"), "system": _l("System"),
              "job": _l("Background job"), "cli": _l("Command line")}
    return [("", str(_l("Any")))] + [(k, str(labels.get(k, k))) for k in sorted(ACTOR_KINDS)]


class AuditFilterForm(FlaskForm):  # type: ignore[misc]
    """The audit log's filter: a GET form (ids and action names only, nothing personal)."""

    class Meta:
        csrf = False  # a search that changes nothing

    action = StringField(_l("Action"), validators=[Optional(), Length(max=64)],
                         render_kw={"placeholder": "customer.looked_up", "spellcheck": "false"})
    actor = SelectField(_l("Actor kind"), choices=_actor_choices, validators=[Optional()])
    customer_id = StringField(_l("Customer id"), validators=[Optional(), Length(max=36)],
                              render_kw={"spellcheck": "false"})
    since = IntegerField(_l("After sequence number"), validators=[
        Optional(), NumberRange(min=0, max=MAX_SEQ)])

"""The forms of the purpose and system registries (Flask-WTF: each carries the CSRF token).

They only collect values: the rules (names, scopes, URLs, the purpose fields and what
depends on what) are the use cases' and the API schema's, and their errors are shown
beside the fields they name."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
    widgets,
)
from wtforms.validators import DataRequired, Length, Optional

from consent.purpose_record import Risk
from consent.purposes import CookieCategory, LegalBasis
from privacy_hub.systems import SCOPES
from privacy_hub.vault.models import PERSONAL_FIELDS


class CheckboxesField(SelectMultipleField):  # type: ignore[misc]
    """Several choices as checkboxes in a fieldset (no multi-select box to fight with)."""

    widget = widgets.ListWidget(prefix_label=False)
    option_widget = widgets.CheckboxInput()

    def pre_validate(self, form: object) -> None:
        """Unknown values are the use case's to refuse, beside the field."""


class NewSystemForm(FlaskForm):  # type: ignore[misc]
    name = StringField(_l("Name"), validators=[
        DataRequired(_l("Enter a name for the system")), Length(max=64)],
        render_kw={"autocomplete": "off", "spellcheck": "false"})
    scopes = CheckboxesField(_l("Scopes"), choices=lambda: [(s, s) for s in SCOPES])
    purposes = TextAreaField(_l("Limit to these purposes (optional)"), validators=[
        Length(max=5000)], render_kw={"rows": 3, "spellcheck": "false"})
    webhook_url = StringField(_l("Webhook URL (optional)"), validators=[
        Optional(), Length(max=2000)],
        render_kw={"inputmode": "url", "spellcheck": "false", "autocomplete": "off"})


def basis_names() -> dict[str, str]:
    """Each legal basis's name for people, with its article."""
    return {
        "consent": str(_l("Consent (Art. 6(1)(a))")),
        "contract": str(_l("Contract (Art. 6(1)(b))")),
        "legal_obligation": str(_l("Legal obligation (Art. 6(1)(c))")),
        "vital_interests": str(_l("Vital interests (Art. 6(1)(d))")),
        "public_task": str(_l("Public task (Art. 6(1)(e))")),
        "legitimate_interests": str(_l("Legitimate interests (Art. 6(1)(f))")),
    }


def cookie_names() -> dict[str, str]:
    """Each cookie category's name for people."""
    return {"necessary": str(_l("Strictly necessary")), "preferences": str(_l("Preferences")),
            "statistics": str(_l("Statistics")), "marketing": str(_l("Marketing"))}


def risk_names() -> dict[str, str]:
    """Each risk level's name for people (Art. 35(1))."""
    return {"standard": str(_l("Standard")),
            "high": str(_l("High: needs a data protection impact assessment (Art. 35)"))}


def _risk_choices() -> list[tuple[str, str]]:
    names = risk_names()
    return [(str(r), names[str(r)]) for r in Risk]


def _basis_choices() -> list[tuple[str, str]]:
    names = basis_names()
    return [(str(b), names[str(b)]) for b in LegalBasis]


def _cookie_choices() -> list[tuple[str, str]]:
    names = cookie_names()
    return [("", str(_l("None: not a cookie or tracker")))] + [
        (str(c), names[str(c)]) for c in CookieCategory]


class PurposeFieldsForm(FlaskForm):  # type: ignore[misc]
    """The fields a purpose has in every version."""

    title = StringField(_l("Title"), validators=[Length(max=200)])
    description = TextAreaField(_l("Description"), validators=[Length(max=5000)],
                                render_kw={"rows": 4})
    title_de = StringField(_l("Title in German"), validators=[Length(max=200)],
                           render_kw={"lang": "de"})
    description_de = TextAreaField(_l("Description in German"), validators=[Length(max=5000)],
                                   render_kw={"rows": 4, "lang": "de"})
    cookie_category = SelectField(_l("Cookie category"), choices=_cookie_choices)
    fields = CheckboxesField(_l("Customer fields it may read"),
                             choices=lambda: [(f, f) for f in PERSONAL_FIELDS])
    data_categories = TextAreaField(_l("Categories of personal data"), render_kw={"rows": 3})
    recipients = TextAreaField(_l("Recipients"), render_kw={"rows": 3})
    retention_days = StringField(_l("Retention (days)"), render_kw={"inputmode": "numeric"})
    consent_lifetime_days = StringField(_l("Consent lifetime (days, optional)"),
                                        render_kw={"inputmode": "numeric"})
    double_opt_in = BooleanField(_l("Double opt-in: consent counts once confirmed by email"))
    direct_marketing = BooleanField(_l("Direct marketing: an objection stops it absolutely"))
    sale_or_sharing = BooleanField(
        _l("Sale or sharing: a Global Privacy Control signal refuses it"))
    special_category = BooleanField(_l("Special-category data (Art. 9): explicit consent"))
    lia_ref = StringField(_l("Legitimate interests assessment (reference)"))
    dpv = StringField(_l("DPV purpose term (optional)"), render_kw={"spellcheck": "false"})
    source_purpose = StringField(_l("Collected first for purpose (optional)"),
                                 render_kw={"spellcheck": "false"})
    compatibility_ref = StringField(_l("Compatibility assessment (reference)"))
    data_subject_categories = TextAreaField(_l("Categories of data subjects"),
                                            render_kw={"rows": 2})
    transfers = TextAreaField(_l("Transfers to third countries"), validators=[Length(max=20000)],
                              render_kw={"rows": 3, "spellcheck": "false"})
    adm_logic = TextAreaField(_l("Automated decision: the logic involved"),
                              validators=[Length(max=2000)], render_kw={"rows": 2})
    adm_significance = TextAreaField(_l("Automated decision: its significance"),
                                     validators=[Length(max=2000)], render_kw={"rows": 2})
    adm_consequences = TextAreaField(_l("Automated decision: the envisaged consequences"),
                                     validators=[Length(max=2000)], render_kw={"rows": 2})
    risk = SelectField(_l("Risk"), choices=_risk_choices, default="standard")
    dpia_ref = StringField(_l("Data protection impact assessment (reference)"))


class NewPurposeForm(PurposeFieldsForm):
    key = StringField(_l("Key"), render_kw={"spellcheck": "false", "autocomplete": "off"})
    legal_basis = SelectField(_l("Legal basis"), choices=_basis_choices)
    soft_opt_in = BooleanField(_l("Soft opt-in (ePrivacy Art. 13(2)): own similar products "
                                  "to buyers, until they object"))


class PurposeVersionForm(PurposeFieldsForm):
    material = BooleanField(_l("This is a material change: ask customers again"))


class NoticeForm(FlaskForm):  # type: ignore[misc]
    version = StringField(_l("Version"), validators=[
        DataRequired(_l("Enter the notice's version, e.g. 2026-10")), Length(max=64)],
        render_kw={"spellcheck": "false", "autocomplete": "off"})
    language = StringField(_l("Language"), default="en", validators=[
        DataRequired(_l("Enter a language tag, e.g. en or de")), Length(max=16)],
        render_kw={"spellcheck": "false", "autocomplete": "off"})
    text = TextAreaField(_l("Text"), validators=[
        DataRequired(_l("Enter the notice's text")), Length(max=200_000)],
        render_kw={"rows": 12})

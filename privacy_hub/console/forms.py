"""The console's forms (Flask-WTF: each carries the session's CSRF token)."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import PasswordField, SelectField, StringField
from wtforms.validators import DataRequired, Length

from privacy_hub.staff.roles import ROLES


class SignInForm(FlaskForm):  # type: ignore[misc]
    email = StringField(_l("Email address"), validators=[
        DataRequired(_l("Enter your email address")), Length(max=320)],
        render_kw={"autocomplete": "username", "inputmode": "email", "spellcheck": "false"})
    password = PasswordField(_l("Password"), validators=[
        DataRequired(_l("Enter your password")), Length(max=1024)],
        render_kw={"autocomplete": "current-password"})
    code = StringField(_l("Code from your authenticator app"), validators=[
        DataRequired(_l("Enter the 6-digit code from your authenticator app, or a recovery code")),
        Length(max=32)],
        render_kw={"autocomplete": "one-time-code", "inputmode": "numeric",
                   "spellcheck": "false"})


def _role_choices() -> list[tuple[str, str]]:
    labels = {"admin": _l("Admin: staff and systems"), "dpo": _l("DPO: all privacy work"),
              "agent": _l("Agent: requests and look-ups"),
              "auditor": _l("Auditor: reads everything, changes nothing")}
    return [(role, str(labels[role])) for role in ROLES]


class NewStaffForm(FlaskForm):  # type: ignore[misc]
    email = StringField(_l("Email address"), validators=[
        DataRequired(_l("Enter an email address")), Length(max=320)],
        render_kw={"autocomplete": "off", "inputmode": "email", "spellcheck": "false"})
    role = SelectField(_l("Role"), choices=_role_choices)
    password = PasswordField(_l("First password"), validators=[
        DataRequired(_l("Enter a first password")), Length(max=1024)],
        render_kw={"autocomplete": "new-password"})


class RoleForm(FlaskForm):  # type: ignore[misc]
    role = SelectField(_l("Role"), choices=_role_choices)


class ActionForm(FlaskForm):  # type: ignore[misc]
    """A button that changes something: only its CSRF token."""

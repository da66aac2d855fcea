"""The portal's forms (Flask-WTF: each carries the session's CSRF token)."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import HiddenField, StringField
from wtforms.validators import DataRequired, Length


class SignInForm(FlaskForm):  # type: ignore[misc]
    email = StringField(_l("Email address"), validators=[
        DataRequired(_l("Enter your email address")), Length(max=320)],
        render_kw={"autocomplete": "email", "inputmode": "email", "spellcheck": "false"})


class LinkForm(FlaskForm):  # type: ignore[misc]
    token = HiddenField(validators=[DataRequired()])


class ActionForm(FlaskForm):  # type: ignore[misc]
    """A button that changes something: only its CSRF token."""

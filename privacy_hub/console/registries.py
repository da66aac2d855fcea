"""The purpose registry: what personal data is used for and on which legal basis
(Art. 5(1)(b), 6(1) GDPR), and the privacy notices shown to customers (Art. 13). The
systems that receive the data are in ``systems_pages``; the form helpers here serve both.

Every change goes through the use case the API calls, with the staff member as the
audited actor.
"""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from flask import abort, make_response, redirect, render_template, request, url_for
from flask_babel import gettext as _
from werkzeug.wrappers import Response

from consent.errors import Conflict as ConsentConflict
from consent.errors import DpiaRequired, InvalidInput, UnknownNotice, UnknownPurpose
from consent.purpose_record import DEFAULT_SUBJECT_CATEGORIES
from privacy_hub.api.purposes import NoticeCreate, PurposeCreate, PurposePatch
from privacy_hub.console import actor, bp, requires
from privacy_hub.console.registry_forms import (
    NewPurposeForm,
    NoticeForm,
    PurposeVersionForm,
    basis_names,
    cookie_names,
    risk_names,
)
from privacy_hub.usecases import purposes as purpose_cases
from privacy_hub.web.context import db


def _lines(text: str | None) -> list[str]:
    """A textarea's non-empty lines (one value per line; commas separate too)."""
    return [v.strip() for line in (text or "").splitlines() for v in line.split(",")
            if v.strip()]


def _shown_once(html: str) -> Response:
    """A page with a secret on it: no cache, no copy kept by the browser or a proxy."""
    response = make_response(html)
    response.headers["Cache-Control"] = "no-store"
    return response


def _add_errors(form: Any, errors: dict[str, list[str]]) -> None:
    """A use case's field errors beside the form's fields (others at the top)."""
    for name, messages in errors.items():
        name = _FIELD_OF.get(name, name)
        target = getattr(form, name, None)
        if target is not None and hasattr(target, "errors") and name != "csrf_token":
            target.errors = [*target.errors, *messages]
        else:
            form.form_errors.extend(messages)


@bp.context_processor
def _registry_names() -> dict[str, object]:
    return {"basis_names": basis_names(), "cookie_names": cookie_names(),
            "risk_names": risk_names()}


# -- purposes ---------------------------------------------------------------------------

_OPTIONAL_TEXT = ("lia_ref", "dpv", "source_purpose", "compatibility_ref", "dpia_ref")
_DECISION = ("logic", "significance", "consequences")
_FLAGS = ("double_opt_in", "direct_marketing", "sale_or_sharing", "special_category")
_LISTS = ("data_categories", "recipients")


def _number(text: str | None) -> int | str | None:
    """A number field: an int, the text as typed (the schema names it invalid), or None."""
    text = (text or "").strip()
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        return text


def _transfers(text: str | None) -> list[dict[str, str]]:
    """Transfers one a line, as ``recipient; country; safeguard`` (commas may appear in a
    safeguard); a line with parts missing is passed on for the schema to name."""
    found = []
    for line in (text or "").splitlines():
        if line.strip():
            parts = [p.strip() for p in line.split(";", 2)] + ["", ""]
            found.append({"recipient": parts[0], "country": parts[1].upper(),
                          "safeguard": parts[2]})
    return found


def _transfer_lines(transfers: list[dict[str, str]] | None) -> str:
    return "\n".join(f"{t['recipient']}; {t['country']}; {t['safeguard']}"
                     for t in transfers or [])


def _purpose_values(form: Any) -> dict[str, Any]:
    """The form as the API's purpose body (PurposeFields): empty optional fields are null."""
    values: dict[str, Any] = {
        "title": (form.title.data or "").strip(), "description": (form.description.data or "").strip(),
        "cookie_category": form.cookie_category.data or None, "fields": form.fields.data or [],
        "retention_days": _number(form.retention_days.data),
        "consent_lifetime_days": _number(form.consent_lifetime_days.data),
        **{name: bool(getattr(form, name).data) for name in _FLAGS},
        **{name: _lines(getattr(form, name).data) for name in _LISTS},
        **{name: (getattr(form, name).data or "").strip() or None for name in _OPTIONAL_TEXT},
        # empty: the registry's default, the shop's customers
        "data_subject_categories": _lines(form.data_subject_categories.data)
        or list(DEFAULT_SUBJECT_CATEGORIES),
        "transfers": _transfers(form.transfers.data), "risk": form.risk.data or "standard",
    }
    decision = {k: (getattr(form, f"adm_{k}").data or "").strip() for k in _DECISION}
    # none of the three: no automated decision; some: the schema names the missing ones
    values["automated_decisions"] = decision if any(decision.values()) else None
    german = {"title": (form.title_de.data or "").strip(),
              "description": (form.description_de.data or "").strip()}
    # the German text is one of the purpose's translations (API.md "Purposes"): none when
    # both inputs are empty; the default title and description are shown instead
    values["translations"] = {"de": german} if german["title"] or german["description"] else {}
    return values


#: the console's inputs for the fields a use case's error names
_FIELD_OF = {"translations": "title_de", "translations.de": "title_de",
             "translations.de.title": "title_de", "translations.de.description": "description_de",
             "automated_decisions": "adm_logic",
             **{f"automated_decisions.{k}": f"adm_{k}" for k in _DECISION}}


def _flat(messages: Any) -> list[str]:
    if isinstance(messages, dict):
        return [m for value in messages.values() for m in _flat(value)]
    if isinstance(messages, list):
        return [m for value in messages for m in _flat(value)]
    return [str(messages)]


def _validated(schema: Any, body: dict[str, Any], form: Any) -> dict[str, Any] | None:
    """``body`` loaded by the API's own schema (the same rules as POST/PATCH
    /api/v1/purposes); its errors beside the form's fields, and None."""
    try:
        loaded: dict[str, Any] = schema.load(body)
    except ma.ValidationError as exc:
        errors = exc.messages if isinstance(exc.messages, dict) else {"": exc.messages}
        german = errors.pop("translations", None)
        if isinstance(german, dict) and isinstance(german.get("de"), dict):
            errors |= {f"translations.de.{k}": v for k, v in german["de"].items()}
        elif german is not None:
            errors["translations"] = german
        decision = errors.pop("automated_decisions", None)
        if isinstance(decision, dict):
            errors |= {f"automated_decisions.{k}": v for k, v in decision.items()}
        elif decision is not None:
            errors["automated_decisions"] = decision
        _add_errors(form, {name: _flat(m) for name, m in errors.items()})
        return None
    return loaded


def _purpose(key: str) -> dict[str, Any]:
    try:
        return purpose_cases.get(db(), key)
    except UnknownPurpose:
        abort(404)


@bp.get("/purposes/")
@requires("purposes:read")
def purposes() -> str:
    return render_template("console/purposes.html", nav="purposes",
                           purposes=purpose_cases.all_purposes(db()))


@bp.route("/purposes/-/new", methods=["GET", "POST"])
@requires("purposes:write")
def purpose_new() -> str | Response | tuple[str, int]:
    form = NewPurposeForm()
    status = 200
    if form.validate_on_submit():
        body = {k: v for k, v in _purpose_values(form).items() if v not in (None, "", {})}
        body |= {"key": (form.key.data or "").strip(), "legal_basis": form.legal_basis.data,
                 "soft_opt_in": bool(form.soft_opt_in.data)}
        if body["key"] == "":
            del body["key"]
        values = _validated(PurposeCreate(), body, form)
        if values is not None:
            try:
                created = purpose_cases.create(db(), values, actor=actor())
            except InvalidInput as exc:
                _add_errors(form, exc.errors)
            except DpiaRequired as exc:  # R-DPBD-03
                form.dpia_ref.errors = [*form.dpia_ref.errors, str(exc)]
                status = 409
            except ConsentConflict as exc:
                form.key.errors = [*form.key.errors, str(exc)]
                status = 409
            else:
                return redirect(url_for("console.purpose", key=created["key"], done="created"),
                                303)
    if form.errors and status == 200:
        status = 422
    return render_template("console/purpose_form.html", nav="purposes", form=form,
                           purpose=None), status


@bp.get("/purposes/<key>")
@requires("purposes:read")
def purpose(key: str) -> str:
    found = _purpose(key)
    done = {"created": _("The purpose is registered, version 1."),
            "material": _("A new version is in force: consents to older versions no longer "
                          "count, so customers are asked again."),
            "changed": _("The change is saved; the version stays the same.")}.get(
        request.args.get("done", ""))
    notified = request.args.get("notified", type=int)
    if done and notified is not None and request.args.get("done") == "material":
        # R-CONSENT-09: how many customers were told, queued with the change
        done += " " + _("Customers sent a mail because this change invalidates their "
                        "consent: %(num)d.", num=notified)
    return render_template("console/purpose.html", nav="purposes", purpose=found,
                           history=purpose_cases.history(db(), key), done=done)


def _form_data(current: dict[str, Any]) -> dict[str, Any]:
    """A purpose's values as the form's initial data."""
    data = {name: current.get(name) for name in (
        "title", "description", "fields", "double_opt_in", "direct_marketing",
        "sale_or_sharing", "special_category", *_OPTIONAL_TEXT)}
    data.update(cookie_category=current.get("cookie_category") or "",
                retention_days=str(current["retention_days"]),
                consent_lifetime_days=str(current.get("consent_lifetime_days") or ""),
                **{name: "\n".join(current.get(name) or []) for name in _LISTS},
                data_subject_categories="\n".join(current.get("data_subject_categories") or []),
                transfers=_transfer_lines(current.get("transfers")),
                risk=current.get("risk") or "standard",
                **{f"adm_{k}": (current.get("automated_decisions") or {}).get(k, "")
                   for k in _DECISION})
    german = (current.get("translations") or {}).get("de") or {}
    data.update(title_de=german.get("title", ""), description_de=german.get("description", ""))
    return data


@bp.route("/purposes/<key>/new-version", methods=["GET", "POST"])
@requires("purposes:write")
def purpose_edit(key: str) -> str | Response | tuple[str, int]:
    current = _purpose(key)
    form = PurposeVersionForm(data=_form_data(current))
    status = 200
    if form.validate_on_submit():
        # PATCH semantics: only what differs from the current version is sent
        wanted = _purpose_values(form)
        # a PATCH replaces every translation: keep the languages this form does not edit
        others = {lang: text for lang, text in (current.get("translations") or {}).items()
                  if lang != "de"}
        wanted["translations"] = {**others, **wanted["translations"]}
        changes = {name: value for name, value in wanted.items()
                   if value != (current.get(name) if name not in ("fields", *_LISTS)
                                else list(current.get(name) or []))}
        if not changes and not form.material.data:
            form.form_errors.append(_("Nothing was changed."))
        else:
            values = _validated(PurposePatch(), {**changes, "material": bool(form.material.data)},
                                form)
            if values is not None:
                try:
                    updated = purpose_cases.update(db(), key, values, actor=actor())
                except InvalidInput as exc:
                    _add_errors(form, exc.errors)
                except DpiaRequired as exc:  # R-DPBD-03
                    form.dpia_ref.errors = [*form.dpia_ref.errors, str(exc)]
                    status = 409
                except ConsentConflict as exc:
                    form.form_errors.append(str(exc))
                    status = 409
                else:
                    if updated["version"] > current["version"]:
                        return redirect(url_for("console.purpose", key=key, done="material",
                                                notified=updated["notified"]), 303)
                    return redirect(url_for("console.purpose", key=key, done="changed"), 303)
    if form.errors and status == 200:
        status = 422
    return render_template("console/purpose_form.html", nav="purposes", form=form,
                           purpose=current), status


# -- privacy notices --------------------------------------------------------------------

def _notices_page(form: NoticeForm, status: int = 200) -> tuple[str, int]:
    return render_template("console/notices.html", nav="purposes", form=form,
                           notices=purpose_cases.all_notices(db())), status


@bp.get("/notices/")
@requires("purposes:read")
def notices() -> tuple[str, int]:
    return _notices_page(NoticeForm())


@bp.post("/notices/publish")
@requires("purposes:write")
def notice_publish() -> str | tuple[str, int]:
    form = NoticeForm()
    if not form.validate_on_submit():
        return _notices_page(form, 422)
    body = {"version": form.version.data.strip(), "language": form.language.data.strip(),
            "text": form.text.data}
    values = _validated(NoticeCreate(), body, form)
    if values is None:
        return _notices_page(form, 422)
    try:
        published, created = purpose_cases.publish_notice(
            db(), version=values["version"], language=values["language"], text=values["text"],
            actor=actor())
    except ConsentConflict as exc:
        form.text.errors = [*form.text.errors, str(exc)]
        return _notices_page(form, 409)
    return render_template("console/notice.html", nav="purposes", notice=published,
                           created=created, published_now=True)


@bp.get("/notices/<version>/<language>")
@requires("purposes:read")
def notice(version: str, language: str) -> str:
    try:
        found = purpose_cases.notice(db(), version, language)
    except UnknownNotice:
        abort(404)
    return render_template("console/notice.html", nav="purposes", notice=found, created=False,
                           published_now=False)

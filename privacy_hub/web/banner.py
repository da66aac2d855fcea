"""The cookie banner as a shop embeds it: its script, its texts, and where answers go.

A shop page adds ``<script src="<hub>/consent/banner.js" defer></script>``; the script
asks ``/consent/banner/config`` what to ask and posts the visitor's answer to
``/consent/banner/choices``. Both answer cross-origin requests from the shop's origins
(``PRIVACY_HUB_SHOP_ORIGINS``) and the hub's own; no cookie of the hub is involved.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import marshmallow as ma
from flask import Blueprint, Response, current_app, jsonify, request, send_from_directory
from flask_babel import force_locale
from flask_babel import gettext as _
from marshmallow import validate

from consent.errors import InvalidInput
from privacy_hub.usecases import banner
from privacy_hub.web import i18n
from privacy_hub.web.context import db, gpc_signal, hub, limiter
from privacy_hub.web.problems import problem_response

bp = Blueprint("banner", __name__)

#: answers per client address an hour: plenty for people, a wall for a flood
CHOICES_PER_CLIENT = 120


class ChoiceSchema(ma.Schema):
    class Meta:
        unknown = ma.RAISE

    visitor_id = ma.fields.String(required=True, validate=validate.Length(max=36))
    action = ma.fields.String(required=True, validate=validate.OneOf(banner.ACTIONS))
    categories = ma.fields.Dict(keys=ma.fields.String(validate=validate.Length(max=32)),
                                values=ma.fields.Boolean(), load_default=dict,
                                validate=validate.Length(max=8))
    notice_version = ma.fields.String(allow_none=True, load_default=None,
                                      validate=validate.Length(max=64))


_CHOICE = ChoiceSchema()


def _allowed_origin() -> str | None:
    origin = (request.headers.get("Origin") or "").rstrip("/").lower()
    if not origin:
        return None
    own = "{0.scheme}://{0.netloc}".format(urlsplit(hub().settings.base_url)).lower()
    return origin if origin == own or origin in hub().settings.shop_origins else None


@bp.after_request
def _cors(response: Response) -> Response:
    origin = _allowed_origin()
    if origin and request.path.startswith("/consent/banner/"):
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Allow-Methods"] = "GET, POST, OPTIONS"
        response.headers["Access-Control-Allow-Headers"] = "Content-Type"
        response.headers["Access-Control-Max-Age"] = "600"
        response.headers["Vary"] = "Origin"
    return response


def _static_folder() -> str:
    return str(current_app.static_folder) + "/banner"


@bp.get("/consent/banner.js")
def script() -> Response:
    response = send_from_directory(_static_folder(), "banner.js", max_age=300)
    response.headers["Cross-Origin-Resource-Policy"] = "cross-origin"
    return response


@bp.get("/consent/banner.css")
def stylesheet() -> Response:
    response = send_from_directory(_static_folder(), "banner.css", max_age=300)
    response.headers["Cross-Origin-Resource-Policy"] = "cross-origin"
    return response


def _texts() -> dict[str, str]:
    return {
        "title": _("Your privacy choices"),
        "intro": _("We use cookies and similar storage that are needed for the shop to "
                   "work. With your consent we also use them for the purposes below. "
                   "Nothing optional is stored until you choose."),
        "accept_all": _("Accept all"), "reject_all": _("Reject all"),
        "settings": _("Choose for each purpose"), "save": _("Save my choices"),
        "necessary": _("Necessary"),
        "necessary_text": _("Your basket, your sign-in and this choice. Always on."),
        "gpc": _("Refused: your browser asks shops not to sell or share your data "
                 "(Global Privacy Control)."),
        "policy": _("Privacy notice"),
        "statistics": _("Statistics"), "preferences": _("Preferences"),
        "marketing": _("Marketing"),
        "saved": _("Your choice is saved. You can change it any time under "
                   "\"Cookie settings\"."),
    }


@bp.get("/consent/banner/config")
def config() -> Response:
    """What the banner asks, in the visitor's language, and the notice it rests on."""
    language = i18n.normalise(request.args.get("lang")) or i18n.select_locale()
    with force_locale(language):
        texts = _texts()
    body: dict[str, Any] = {"language": language, "texts": texts,
                            "policy_url": hub().settings.controller_policy_url,
                            **banner.questions(db(), language)}
    response = jsonify(body)
    response.headers["Cache-Control"] = "no-store"
    return response



@bp.route("/consent/banner/choices", methods=["POST", "OPTIONS"])
def choose() -> Response | tuple[Response, int]:
    """Keep a visitor's answer; ``Sec-GPC: 1`` refuses sale or sharing whatever was sent."""
    if request.method == "OPTIONS":
        return Response(status=204)
    wait = limiter().hit("banner|" + (request.remote_addr or "?"), limit=CHOICES_PER_CLIENT,
                          window=3600)
    if wait is not None:
        return problem_response(429, "Too many answers from this address; try again later.",
                                headers={"Retry-After": str(int(wait) + 1)})
    payload = request.get_json(silent=True)
    if not isinstance(payload, dict):
        return problem_response(400, "Send the answer as a JSON object.")
    try:
        body = _CHOICE.load(payload)
        kept = banner.answer(db(), visitor_id=body["visitor_id"], choices=body["categories"],
                             action=body["action"], notice_version=body["notice_version"],
                             gpc=gpc_signal())
    except ma.ValidationError as exc:
        messages = exc.messages if isinstance(exc.messages, dict) else {"_schema": exc.messages}
        return problem_response(422, "Some fields are invalid.", errors={
            str(k): [str(m) for m in (v if isinstance(v, list) else [v])]
            for k, v in messages.items()})
    except InvalidInput as exc:
        return problem_response(422, "Some fields are invalid.", errors=exc.errors)
    return jsonify(kept), 201

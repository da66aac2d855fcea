"""A demo shop page that embeds the cookie banner, as a shop would (``/demo/shop``).

It stands for the shop's own site: its page loads ``/consent/banner.js`` under the hub's
strict Content-Security-Policy, and its "sign in" tells the hub which customer the
visitor is, as a shop's backend would with ``POST /api/v1/visitors/{id}/link``.
"""

from __future__ import annotations

import contextlib
import json
from urllib.parse import unquote

from flask import Blueprint, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

import audit
from consent.errors import InvalidInput
from privacy_hub.demo import DEMO_CUSTOMERS
from privacy_hub.usecases import banner, customers
from privacy_hub.usecases.errors import UseCaseError
from privacy_hub.web.context import db, hub
from privacy_hub.web.security import protect_forms

bp = Blueprint("demo", __name__, url_prefix="/demo")
protect_forms(bp)

PRODUCTS = [("Linen shirt", "49.00"), ("Canvas sneakers", "79.00"), ("Wool scarf", "29.00"),
            ("Leather belt", "39.00")]


@bp.get("/shop")
def shop() -> str:
    customers = [(c["email"], f'{c["first_name"]} {c["last_name"]}') for c in DEMO_CUSTOMERS]
    return render_template("demo/shop.html", products=PRODUCTS, customers=customers,
                           linked=request.args.get("linked"))


@bp.post("/shop/sign-in")
def sign_in() -> Response:
    """The shop learns who the visitor is: their banner choice becomes the customer's."""
    email = request.form.get("email", "")
    if email not in {c["email"] for c in DEMO_CUSTOMERS}:
        return redirect(url_for("demo.shop"), 303)
    try:
        # banner.js writes the cookie with encodeURIComponent
        visitor = json.loads(unquote(request.cookies.get("hub_consent") or "{}")).get("visitor")
    except ValueError:
        visitor = None
    shop = audit.Actor("system", "demo-shop")
    found = customers.lookup(hub(), db(), {"email": email}, actor=shop)
    linked = 0
    if visitor and found:
        # The shop's backend would call POST /api/v1/visitors/{visitor}/link here.
        with contextlib.suppress(InvalidInput, UseCaseError):
            linked = len(banner.link_visitor(hub(), db(), visitor, found[0], actor=shop))
    return redirect(url_for("demo.shop", linked=linked), 303)

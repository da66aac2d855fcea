"""The console's overview: where each kind of work is, for the signed-in role."""

from __future__ import annotations

from flask import render_template

from privacy_hub.console import bp


@bp.get("/")
def home() -> str:
    return render_template("console/home.html", nav="home")

"""The records of processing activities (Art. 30(1) GDPR), generated from the purpose and
system registries: readable sections per activity, and the very bytes the API gives as
CSV and JSON (Art. 30(4): on request, for the supervisory authority)."""

from __future__ import annotations

from flask import Response, jsonify, render_template

from privacy_hub.console import bp, requires
from privacy_hub.usecases import accountability, ropa_versions
from privacy_hub.web.context import db, hub

#: the newest versions listed on the page; GET /api/v1/ropa/versions has them all
VERSIONS_SHOWN = 20


@bp.get("/ropa/")
@requires("ropa:read")
def ropa() -> str:
    """One section per processing activity, with the controller and the DPO first, and the
    latest versions of the record (R-ROPA-01)."""
    record = ropa_versions.named_record(hub(), db())
    versions, _more = ropa_versions.versions(db(), before=None, limit=VERSIONS_SHOWN)
    return render_template("console/ropa.html", nav="ropa", record=record, versions=versions)


@bp.get("/ropa/ropa.json")
@requires("ropa:read")
def ropa_json() -> Response:
    """The record as GET /api/v1/ropa gives it."""
    response = jsonify(ropa_versions.named_record(hub(), db()))
    response.headers["Content-Disposition"] = 'attachment; filename="ropa.json"'
    return response


@bp.get("/ropa/ropa.csv")
@requires("ropa:read")
def ropa_csv() -> Response:
    """The record as GET /api/v1/ropa?format=csv gives it."""
    record = accountability.records_of_processing(hub(), db())
    return Response(accountability.records_as_csv(record), mimetype="text/csv",
                    headers={"Content-Disposition": 'attachment; filename="ropa.csv"'})

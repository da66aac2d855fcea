"""Figures for a supervisory authority or a board: consent decisions per purpose, requests
by type and status, how fast and how punctually they were answered, overdue requests now,
webhook delivery failures. Each as a chart drawn on the server and as a table."""

from __future__ import annotations

import csv
import io
from datetime import date

from babel.dates import format_skeleton
from flask import Response, render_template, request
from flask_babel import format_decimal, get_locale
from flask_babel import gettext as _
from markupsafe import Markup

from privacy_hub.console import bp, requires
from privacy_hub.console.charts import Series, bar_chart
from privacy_hub.usecases import figures as figures_cases
from privacy_hub.web.context import db, read_only_request

#: where the requests page lists overdue requests (console/requests, by its URL)
OVERDUE_URL = "/console/requests/?due=overdue"


def period_names() -> dict[str, str]:
    return {"30d": _("Last 30 days"), "90d": _("Last 90 days"), "12m": _("Last 12 months")}


def type_names() -> dict[str, str]:
    """Request types as staff know them, with the article that grants the right."""
    return {"access": _("Access (Art. 15)"), "portability": _("Portability (Art. 20)"),
            "erasure": _("Erasure (Art. 17)"), "rectification": _("Rectification (Art. 16)"),
            "restriction": _("Restriction (Art. 18)"), "objection": _("Objection (Art. 21)")}


def suppression_reasons() -> dict[str, str]:
    """Why identifiers are on the suppression list (R-ERASE-05), as staff read it."""
    return {"erased": _("Erased (Art. 17)"),
            "objected_direct_marketing": _("Objected to direct marketing (Art. 21(3))")}


def status_names() -> dict[str, str]:
    return {"pending_verification": _("Awaiting verification"), "verified": _("Verified"),
            "processing": _("Processing"), "completed": _("Completed"),
            "rejected": _("Rejected"), "cancelled": _("Cancelled")}


def _short_type(kind: str) -> str:
    """A type's name without the article, for a chart's narrow axis."""
    return type_names()[kind].split(" (")[0]


def bucket_label(day: date, bucket: str) -> str:
    """A week by its first day ("3 Mar"), a month by name and year, in the page's language."""
    locale = get_locale()
    return format_skeleton("MMMd" if bucket == "week" else "yMMM", day, locale=locale)


def _number(value: float) -> str:
    return str(format_decimal(value, format="#,##0.#"))


def _charts(f: figures_cases.Figures) -> dict[str, object]:
    labels = [bucket_label(b, f.period.bucket) for b in f.buckets]
    nothing = _("No data in this period")
    per = _("per week") if f.period.bucket == "week" else _("per month")
    consent_charts: dict[str, Markup] = {}
    for i, (purpose, counts) in enumerate(f.consents.items()):
        title = f.purpose_titles.get(purpose, purpose)
        totals = f.consent_totals(purpose)
        consent_charts[purpose] = bar_chart(labels, [
            Series(_("Grants"), [counts[b].grants for b in f.buckets]),
            Series(_("Refusals"), [counts[b].refusals for b in f.buckets]),
            Series(_("Withdrawals"), [counts[b].withdrawals for b in f.buckets]),
        ], chart_id=f"consents-{i}", empty_text=nothing, number=_number, summary=_(
            "%(purpose)s, %(per)s: %(grants)s grants, %(refusals)s refusals, "
            "%(withdrawals)s withdrawals in the period.", purpose=title, per=per,
            grants=totals.grants, refusals=totals.refusals, withdrawals=totals.withdrawals))
    types = figures_cases.REQUEST_TYPES
    statuses = figures_cases.REQUEST_STATUSES
    by_type = bar_chart(
        [_short_type(t) for t in types], [Series(_("Requests"), [f.requests_by_type[t] for t in types])],
        chart_id="requests-type", empty_text=nothing, number=_number,
        summary=_("Requests received in the period by type: %(total)s in all.",
                  total=sum(f.requests_by_type.values())))
    by_status = bar_chart(
        [status_names()[s] for s in statuses],
        [Series(_("Requests"), [f.requests_by_status[s] for s in statuses])],
        chart_id="requests-status", empty_text=nothing, number=_number,
        summary=_("Requests received in the period by status now: %(total)s in all.",
                  total=sum(f.requests_by_status.values())))
    done = list(f.timeliness)
    median = bar_chart(
        [_short_type(t.type) for t in done],
        [Series(_("Median days"), [t.median_days or 0 for t in done])],
        chart_id="requests-median", empty_text=_("No request was completed in this period"),
        number=_number, summary=_("Median days from receipt to completion, per request type."))
    punctual = bar_chart(
        [_short_type(t.type) for t in done],
        [Series(_("On time"), [t.on_time for t in done]),
         Series(_("Late"), [t.late for t in done])],
        chart_id="requests-punctual", empty_text=_("No request was completed in this period"),
        number=_number, summary=_(
            "Requests completed in the period: %(on_time)s on time, %(late)s late.",
            on_time=sum(t.on_time for t in done), late=sum(t.late for t in done)))
    failure_charts: dict[str, Markup] = {}
    for i, (system, failures) in enumerate(f.webhook_failures.items()):
        failed = f.failure_totals(system)
        failure_charts[system] = bar_chart(labels, [
            Series(_("Failed, retried"), [failures[b].failed for b in f.buckets]),
            Series(_("Dead"), [failures[b].dead for b in f.buckets]),
        ], chart_id=f"failures-{i}", empty_text=nothing, number=_number, summary=_(
            "Webhook deliveries to %(system)s, %(per)s: %(failed)s failed and retried, "
            "%(dead)s dead in the period.", system=system or _("a removed system"), per=per,
            failed=failed.failed, dead=failed.dead))
    return {"bucket_labels": labels, "consent_charts": consent_charts, "by_type": by_type,
            "by_status": by_status, "median": median, "punctual": punctual,
            "failure_charts": failure_charts}


@bp.get("/figures/")
@requires("figures:read")
@read_only_request
def figures() -> str:
    f = figures_cases.figures(db(), period_key=request.args.get("period"))
    return render_template(
        "console/figures.html", nav="figures", f=f, periods=period_names(),
        types=type_names(), statuses=status_names(), overdue_url=OVERDUE_URL,
        suppression_reasons=suppression_reasons(), **_charts(f))


@bp.get("/figures/figures.csv")
@requires("figures:read")
@read_only_request
def figures_csv() -> Response:
    """The same numbers as one CSV (figure, group, period start, measure, value)."""
    f = figures_cases.figures(db(), period_key=request.args.get("period"))
    buffer = io.StringIO()
    out = csv.writer(buffer, lineterminator="\n")
    out.writerow(["figure", "group", "bucket_start", "measure", "value"])
    for purpose, counts in f.consents.items():
        for b, c in counts.items():
            for measure in ("grants", "refusals", "withdrawals"):
                out.writerow(["consents", purpose, b.isoformat(), measure, getattr(c, measure)])
    for t, n in f.requests_by_type.items():
        out.writerow(["requests_by_type", t, f.period.first_day.isoformat(), "received", n])
    for s, n in f.requests_by_status.items():
        out.writerow(["requests_by_status", s, f.period.first_day.isoformat(), "received", n])
    for timing in f.timeliness:
        for measure in ("completed", "median_days", "on_time", "late"):
            value = getattr(timing, measure)
            out.writerow(["completion", timing.type, f.period.first_day.isoformat(), measure,
                          "" if value is None else value])
    out.writerow(["overdue_now", "", "", "open_past_due", f.overdue_now])
    for reason, n in f.suppression.items():
        out.writerow(["suppression_list", reason, "", "entries_now", n])
    for system, failures in f.webhook_failures.items():
        for b, d in failures.items():
            out.writerow(["webhook_failures", system, b.isoformat(), "failed", d.failed])
            out.writerow(["webhook_failures", system, b.isoformat(), "dead", d.dead])
    name = f"figures-{f.period.key}-{f.period.last_day.isoformat()}.csv"
    return Response(buffer.getvalue(), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})

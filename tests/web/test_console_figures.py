"""The console's figures page (issue 11): the numbers a supervisory authority or a board
asks for, counted from the ledger, the requests and the webhook deliveries, each shown as
a chart and as a table (R-DEAD-03, R-AUD-04, R-CONSENT-07)."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient

import audit
from audit.clock import utcnow
from privacy_hub.db import transaction
from privacy_hub.hub import Hub
from privacy_hub.jobs.worker import Worker
from privacy_hub.usecases import figures as figures_cases
from privacy_hub.usecases import requests as request_cases
from tests.conftest import SEED_EMAIL
from tests.console import make_staff, signed_in_client

ACTOR = audit.Actor("cli", "tests")
SMS, RECOMMENDATIONS = "marketing.sms", "personalisation.recommendations"


def consent(client: FlaskClient, auth: dict[str, str], cid: str, purpose: str,
            granted: bool) -> None:
    resp = client.post(f"/api/v1/customers/{cid}/consents", headers=auth, json={
        "purpose": purpose, "granted": granted, "collection_method": "web_form"})
    assert resp.status_code == 201, resp.json


def new_customer(client: FlaskClient, auth: dict[str, str], email: str) -> str:
    resp = client.post("/api/v1/customers", json={"email": email}, headers=auth)
    assert resp.status_code == 201
    return str(resp.json["id"])


def past_request(hub: Hub, kind: str, days_ago: float, **kwargs: Any) -> None:
    """A request received ``days_ago`` (the DPO logs a letter, R-DSAR-01)."""
    with transaction(hub.sessions) as session:
        request_cases.submit(hub, session, type=kind, actor=ACTOR, channel="letter",
                             received_at=utcnow() - timedelta(days=days_ago), **kwargs)


@pytest.fixture
def seeded(client: FlaskClient, auth: dict[str, str], catalogue: None, customer_id: str,
           hub: Hub) -> None:
    """Known figures: consents (3 grants, 1 refusal, 1 withdrawal), four requests (two
    restrictions completed after 10 and 20 days, an objection completed late after 40,
    an access request still unverified and overdue after 50) and two failed deliveries."""
    other = new_customer(client, auth, "second@example.org")
    consent(client, auth, customer_id, RECOMMENDATIONS, True)
    consent(client, auth, customer_id, RECOMMENDATIONS, False)   # a withdrawal
    consent(client, auth, other, RECOMMENDATIONS, True)
    consent(client, auth, customer_id, SMS, False)        # a refusal
    restriction = {"ground": "unlawful_processing"}
    past_request(hub, "restriction", 10, customer_id=customer_id, verified=True,
                 verification_method="letter_signature", details=restriction)
    past_request(hub, "restriction", 20, customer_id=other, verified=True,
                 verification_method="letter_signature", details=restriction)
    past_request(hub, "objection", 40, customer_id=customer_id, verified=True,
                 verification_method="letter_signature", details={"purposes": ["marketing.email_customers"]})
    past_request(hub, "access", 50, email=SEED_EMAIL)
    worker = Worker(hub)
    worker.run_once()  # the mails so far; no system has a webhook yet
    resp = client.post("/api/v1/systems", headers=auth, json={
        "name": "shop-crm", "scopes": ["consents:read"],
        "webhook_url": "http://127.0.0.1:9/hook"})   # nothing listens there
    assert resp.status_code == 201, resp.json
    consent(client, auth, other, SMS, True)               # delivery 1: fails
    assert worker.run_once() >= 1
    worker.max_attempts = 1
    consent(client, auth, other, SMS, False)              # delivery 2: dead
    assert worker.run_once() >= 1


def page(client: FlaskClient, hub: Hub, query: str = "", role: str = "dpo") -> str:
    signed_in_client(client, make_staff(hub, role))
    resp = client.get(f"/console/figures/{query}")
    assert resp.status_code == 200
    return resp.get_data(as_text=True)


def table_rows(html: str, caption: str) -> dict[str, list[str]]:
    """The rows of the table with ``caption``: row header -> cell texts."""
    start = html.index(f"{caption}</caption>")
    body = html[start:html.index("</table>", start)]
    rows = {}
    for row in re.findall(r"<tr>(.*?)</tr>", body, re.S):
        head = re.search(r'<th scope="row">(.*?)</th>', row, re.S)
        if head:
            cells = re.findall(r'<td class="num">(.*?)</td>', row, re.S)
            rows[head.group(1).strip()] = [re.sub(r"<[^>]+>", "", c).strip() for c in cells]
    return rows


def test_the_figures_count_exactly_the_seeded_consents_requests_and_failures(
        seeded: None, client: FlaskClient, hub: Hub) -> None:
    with hub.sessions() as session:
        f = figures_cases.figures(session)
    rec, news = f.consent_totals(RECOMMENDATIONS), f.consent_totals(SMS)
    assert (rec.grants, rec.refusals, rec.withdrawals) == (2, 0, 1)
    assert (news.grants, news.refusals, news.withdrawals) == (1, 1, 1)
    assert f.requests_by_type == {"access": 1, "portability": 0, "erasure": 0,
                                  "rectification": 0, "restriction": 2, "objection": 1}
    assert f.requests_by_status["completed"] == 3
    assert f.requests_by_status["pending_verification"] == 1
    timing = {t.type: t for t in f.timeliness}
    assert timing["restriction"].median_days == 15.0   # median of 10 and 20 days
    assert (timing["restriction"].on_time, timing["restriction"].late) == (2, 0)
    assert timing["objection"].median_days == 40.0
    assert (timing["objection"].on_time, timing["objection"].late) == (0, 1)
    assert timing["access"].median_days is None and timing["access"].completed == 0
    assert f.overdue_now == 1
    assert f.failure_totals("shop-crm") == figures_cases.DeliveryFailures(failed=1, dead=1)


def test_the_page_tables_show_the_seeded_numbers(
        seeded: None, client: FlaskClient, hub: Hub) -> None:
    """R-DEAD-03: overdue requests are reported, linked to the requests page."""
    html = page(client, hub)
    completion = table_rows(html, "Requests completed in the period, per type")
    assert completion["Restriction (Art. 18)"] == ["2", "15", "2", "0"]
    assert completion["Objection (Art. 21)"] == ["1", "40", "0", "1"]
    assert completion["Access (Art. 15)"][0] == "0"
    by_type = table_rows(html, "Requests received in the period, by type")
    assert by_type["Restriction (Art. 18)"] == ["2"] and by_type["Access (Art. 15)"] == ["1"]
    by_status = table_rows(html, "Requests received in the period, by their status now")
    assert by_status["Completed"] == ["3"] and by_status["Awaiting verification"] == ["1"]
    weeks = table_rows(html, "Personalised recommendations: consent decisions")
    assert [sum(int(v) for v in col) for col in zip(*weeks.values(), strict=True)] == [2, 0, 1]
    failures = table_rows(html, "shop-crm: webhook delivery failures")
    assert [sum(int(v) for v in col) for col in zip(*failures.values(), strict=True)] == [1, 1]
    assert 'href="/console/requests/?due=overdue"' in html
    assert re.search(r'<span class="big-number">1</span>', html)
    # every chart is an image with a summary; no personal data on the page
    assert html.count('role="img"') >= 6
    assert "Personalised recommendations, per week: 2 grants, 0 refusals, 1 withdrawals" in html
    assert SEED_EMAIL not in html and "second@example.org" not in html


def test_a_shorter_period_leaves_out_older_requests(
        seeded: None, client: FlaskClient, hub: Hub) -> None:
    html = page(client, hub, "?period=30d")
    assert '<option value="30d" selected>' in html
    by_type = table_rows(html, "Requests received in the period, by type")
    assert by_type["Restriction (Art. 18)"] == ["2"]
    assert by_type["Objection (Art. 21)"] == ["0"] and by_type["Access (Art. 15)"] == ["0"]


def test_an_empty_hub_shows_the_no_data_state(client: FlaskClient, hub: Hub) -> None:
    html = page(client, hub, "?period=12m")
    assert "No consent decision was recorded in this period." in html
    assert "No data in this period" in html
    assert '<span class="big-number">0</span>' in html


@pytest.mark.parametrize("query", ["?period=x", "?period=", "?period=%00", "?period=30d&period=1y"])
def test_an_odd_period_falls_back_to_the_default(client: FlaskClient, hub: Hub,
                                                 query: str) -> None:
    html = page(client, hub, query)
    assert '<option value="90d" selected>' in html or '<option value="30d" selected>' in html


def test_an_agent_may_not_open_the_figures(client: FlaskClient, hub: Hub) -> None:
    """Least privilege (staff/roles.py): figures are for admins, DPOs and auditors."""
    signed_in_client(client, make_staff(hub, "agent"))
    assert client.get("/console/figures/").status_code == 403
    assert client.get("/console/figures/figures.csv").status_code == 403


def test_the_csv_has_the_same_numbers(seeded: None, client: FlaskClient, hub: Hub) -> None:
    signed_in_client(client, make_staff(hub, "auditor"))
    resp = client.get("/console/figures/figures.csv?period=90d")
    assert resp.status_code == 200 and resp.mimetype == "text/csv"
    lines = resp.get_data(as_text=True).splitlines()
    assert any(line.startswith("completion,restriction,") and line.endswith(",median_days,15.0")
               for line in lines)
    assert "overdue_now,,,open_past_due,1" in lines

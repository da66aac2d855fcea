"""A withdrawal or an objection queues the erasure of the customer's events only when
there is an event it could erase (issue 14; R-ERASE-03 unchanged): on SQLite and
PostgreSQL, through the group-committed consent write and through the session."""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient

from tests.web.test_erasure_on_withdrawal import erasure_jobs, grant, held, run_jobs, send_events

_SESSION_PATH = {"Idempotency-Key": "withdrawal-through-the-session"}


@pytest.mark.parametrize("headers", [{}, _SESSION_PATH], ids=["grouped", "session"])
def test_a_withdrawal_without_events_of_its_purpose_queues_no_erasure(
        client: FlaskClient, auth: dict[str, str], hub: object, catalogue: None,
        customer_id: str, headers: dict[str, str]) -> None:
    """R-ERASE-03: nothing to erase, no job; events of another purpose do not count."""
    grant(client, auth, customer_id, "analytics.behaviour")
    grant(client, auth, customer_id, "personalisation.recommendations")
    send_events(client, auth, customer_id, {"personalisation.recommendations": 2})
    resp = client.post(f"/api/v1/customers/{customer_id}/consents",
                       headers={**auth, **headers},
                       json={"purpose": "analytics.behaviour", "granted": False})
    assert resp.status_code == 201 and resp.json["status"] == "withdrawn"
    assert erasure_jobs(hub, customer_id) == 0  # type: ignore[arg-type]


@pytest.mark.parametrize("headers", [{}, _SESSION_PATH], ids=["grouped", "session"])
def test_a_withdrawal_with_events_of_its_purpose_still_erases_them(
        client: FlaskClient, auth: dict[str, str], hub: object, catalogue: None,
        customer_id: str, headers: dict[str, str]) -> None:
    """R-ERASE-03: the probe sees the events the withdrawal must erase."""
    grant(client, auth, customer_id, "analytics.behaviour")
    send_events(client, auth, customer_id, {"analytics.behaviour": 2})
    resp = client.post(f"/api/v1/customers/{customer_id}/consents",
                       headers={**auth, **headers},
                       json={"purpose": "analytics.behaviour", "granted": False})
    assert resp.status_code == 201
    assert erasure_jobs(hub, customer_id) == 1  # type: ignore[arg-type]
    run_jobs(hub)  # type: ignore[arg-type]
    assert held(hub, customer_id)["analytics.behaviour"] == 0  # type: ignore[arg-type]


def test_an_objection_queues_the_erasure_only_for_a_customer_with_events(
        client: FlaskClient, auth: dict[str, str], hub: object, catalogue: None,
        customer_id: str) -> None:
    """R-ERASE-03, Art. 21(3): an objection to all direct marketing by a customer without
    events queues nothing; by one with an event, it queues the erasure."""
    other = client.post("/api/v1/customers", headers=auth,
                        json={"email": "objector@example.org", "first_name": "Olga"})
    assert other.status_code == 201
    with_events = other.json["id"]
    grant(client, auth, with_events, "analytics.behaviour")
    send_events(client, auth, with_events, {"analytics.behaviour": 1})
    for cid in (customer_id, with_events):
        resp = client.post("/api/v1/requests", headers=auth,
                           json={"type": "objection", "customer_id": cid})
        assert resp.status_code == 201
    assert erasure_jobs(hub, customer_id) == 0  # type: ignore[arg-type]
    assert erasure_jobs(hub, with_events) == 1  # type: ignore[arg-type]

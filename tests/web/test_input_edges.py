"""Edges of input and timing that once ended in a 500: an RFC 3339 time with an offset
that has no UTC equivalent (year 1 at +01:00, year 9999 at -01:00) is a 422 naming the
field; a write that meets a concurrent erasure is a 409 (API.md "Conventions")."""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient

from privacy_hub.db import transaction
from privacy_hub.hub import Hub

BEFORE_TIME = "0001-01-01T00:00:00+01:00"
AFTER_TIME = "9999-12-31T23:59:59-01:00"


@pytest.mark.parametrize("when", [BEFORE_TIME, AFTER_TIME])
def test_times_outside_utc_are_invalid_fields_everywhere(
        client: FlaskClient, auth: dict[str, str], customer_id: str, catalogue: None,
        when: str) -> None:
    cases = [
        ("post", f"/api/v1/customers/{customer_id}/consents",
         {"purpose": "marketing.sms", "granted": True, "collected_at": when}, "collected_at"),
        ("post", "/api/v1/events", {"events": [{
            "customer_id": customer_id, "type": "purchase", "purpose": "orders.fulfilment",
            "occurred_at": when}]}, "events.0.occurred_at"),
        ("post", "/api/v1/requests", {"type": "access", "customer_id": customer_id,
                                      "received_at": when}, "received_at"),
        ("post", f"/api/v1/customers/{customer_id}/tcf",
         {"tc_string": "CQBd", "collected_at": when}, "collected_at"),
        ("get", f"/api/v1/consent-check?customer_id={customer_id}&purpose=marketing.sms"
                f"&at={when.replace('+', '%2B')}", None, "at"),
    ]
    for method, url, body, field in cases:
        resp = getattr(client, method)(url, json=body, headers=auth)
        assert resp.status_code == 422, (url, resp.status_code, resp.json)
        assert field in resp.json["errors"], (url, resp.json)


def test_a_write_that_meets_a_concurrent_erasure_is_told_the_customer_is_erased(
        client: FlaskClient, auth: dict[str, str], customer_id: str, hub: Hub) -> None:
    """The window of a concurrent erasure: this request found the customer active, the
    erasure has since destroyed their key. 409 customer-erased, not a 500."""
    with transaction(hub.sessions) as session:
        hub.keyring.destroy_data_key(session, customer_id)  # the status is still "active"
    for url, body in ((f"/api/v1/customers/{customer_id}/statements",
                       {"text": "My address is wrong.", "concerns": ["address"]}),
                      (f"/api/v1/customers/{customer_id}", {"first_name": "Grace"})):
        method = client.patch if url.endswith(customer_id) else client.post
        resp = method(url, json=body, headers=auth)
        assert resp.status_code == 409 and resp.json["type"].endswith("customer-erased"), \
            (url, resp.status_code, resp.json)

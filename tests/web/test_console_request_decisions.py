"""The console's side of the law's decisions about requests: a DPO rejects on a ground
chosen beside the justification (R-DSAR-06, R-DSAR-07), a request nobody was identified
for says so (R-DSAR-05), and the records of processing say how identity is verified and
that requests are free (R-DSAR-04)."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from flask.testing import FlaskClient

from privacy_hub.hub import Hub
from tests.console import make_staff, signed_in_client
from tests.web.test_console_requests import audit_for, post, request_state, submit


@pytest.fixture
def dpo(hub: Hub, client: FlaskClient) -> Any:
    member = make_staff(hub, "dpo")
    signed_in_client(client, member)
    return member


def test_the_dpo_must_choose_a_ground_shown_beside_the_field(
        hub: Hub, client: FlaskClient, customer_id: str, dpo: Any) -> None:
    """R-DSAR-06: a console rejection names its ground; a missing one is an error beside
    the select, listed at the top too, and nothing changes."""
    rid = submit(hub, customer_id)
    page = client.get(f"/console/requests/{rid}").get_data(as_text=True)
    assert '<select id="reject-ground" name="reject-ground"' in page
    for value in ("manifestly_unfounded", "excessive", "identity_not_confirmed",
                  "identity_not_found", "other"):
        assert f'value="{value}"' in page
    assert "never asks for a fee" in page
    missing = post(client, rid, "reject", **{"reject-reason": "Asked three times today"})
    assert missing.status_code == 422
    html = missing.get_data(as_text=True)
    assert re.search(r'id="reject-ground-error">Choose the ground for the rejection', html)
    assert 'href="#reject-ground"' in html  # the error summary links the field
    assert 'aria-invalid="true"' in html
    # the justification the DPO typed is kept in the form
    assert "Asked three times today" in html
    assert request_state(hub, rid)["status"] == "pending_verification"
    unknown = post(client, rid, "reject", **{"reject-ground": "too_expensive",
                                             "reject-reason": "r"})
    assert unknown.status_code == 422
    assert request_state(hub, rid)["rejection"] is None


def test_the_request_page_shows_the_ground_and_the_reason(
        hub: Hub, client: FlaskClient, customer_id: str, dpo: Any) -> None:
    """R-DSAR-06, R-DSAR-07: the ground and the justification are kept and shown; the
    audit entry names the ground, with the DPO as actor."""
    rid = submit(hub, customer_id)
    done = post(client, rid, "reject", **{"reject-ground": "manifestly_unfounded",
                                          "reject-reason": "The order number does not exist"})
    assert done.status_code == 303
    state = request_state(hub, rid)
    assert state["rejection"]["ground"] == "manifestly_unfounded"
    assert state["rejection"]["reason"] == "The order number does not exist"
    page = client.get(done.headers["Location"]).get_data(as_text=True)
    assert "Ground for the rejection" in page and "Manifestly unfounded (Art. 12(5))" in page
    assert "The order number does not exist" in page
    (entry,) = [e for e in audit_for(hub, rid) if e.action == "request.rejected"]
    assert (entry.actor_type, entry.actor_id) == ("staff", dpo.id)
    assert json.loads(entry.details)["ground"] == "manifestly_unfounded"


def test_a_request_nobody_was_identified_for_says_what_the_requester_was_told(
        hub: Hub, client: FlaskClient, dpo: Any) -> None:
    """R-DSAR-05: the DPO sees that no link was sent, and why the request will close."""
    rid = submit(hub, None)  # an address no customer has
    page = client.get(f"/console/requests/{rid}").get_data(as_text=True)
    assert "No customer is known under the address given" in page
    assert "A single-use link was sent" not in page
    assert "someone@example.org" not in page


def test_the_records_page_says_no_identity_document_is_kept_and_requests_are_free(
        hub: Hub, client: FlaskClient) -> None:
    """R-DSAR-04, R-DSAR-06: the records of processing, as the console shows them."""
    signed_in_client(client, make_staff(hub, "auditor"))
    page = client.get("/console/ropa/").get_data(as_text=True)
    assert "Data subject requests" in page
    assert "never asks for, receives or stores copies of identity documents" in page
    assert "Requests are free of charge" in page
    assert "calendar in force: weekends only" in page

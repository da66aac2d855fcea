"""Every list of the API is paginated as API.md "Conventions" says: ``?limit=`` (default
50, max 1000), an opaque ``?cursor=``, and ``{"items": [...], "next_cursor": ... | null}``.

The lists are found in the served OpenAPI document (every GET whose 200 answer has
``items`` and ``next_cursor``), so a list added later is walked here too: it fails until
it is seeded below (its path parameters named in ``_path``, at least ``MIN_ITEMS`` items).
"""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from privacy_hub.api.pagination import DEFAULT_LIMIT, MAX_LIMIT, encode_cursor
from tests.conftest import SEED_EMAIL
from tests.web.test_tcf_api import tc_string

#: each list holds at least this many items once seeded, so a walk has several pages
MIN_ITEMS = 4
#: the lists that exist today: discovery must find at least these
KNOWN_LISTS = {
    "/api/v1/purposes", "/api/v1/systems", "/api/v1/requests", "/api/v1/audit",
    "/api/v1/webhooks/deliveries", "/api/v1/customers/{customer_id}/consents",
    "/api/v1/customers/{customer_id}/consents/history",
    "/api/v1/customers/{customer_id}/statements", "/api/v1/customers/{customer_id}/tcf/history",
    "/api/v1/retention-policies",
}


def _schema(spec: dict[str, Any], ref_or_schema: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in ref_or_schema:
        return dict(spec["components"]["schemas"][ref_or_schema["$ref"].rsplit("/", 1)[-1]])
    return ref_or_schema


def list_operations(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every GET operation whose 200 answer is a page: ``items`` and ``next_cursor``."""
    found = {}
    for path, item in spec["paths"].items():
        op = item.get("get")
        if op is None:
            continue
        content = op["responses"].get("200", {}).get("content", {})
        schema = content.get("application/json", {}).get("schema")
        props = _schema(spec, schema).get("properties", {}) if schema else {}
        if {"items", "next_cursor"} <= set(props):
            found[path] = op
    return found


def _path(template: str, seeded: dict[str, str]) -> str:
    path = template
    while "{" in path:
        name = path[path.index("{") + 1:path.index("}")]
        assert name in seeded, f"seed the list {template}: nothing for {{{name}}}"
        path = path.replace("{" + name + "}", seeded[name])
    return path


def _get(client: FlaskClient, auth: dict[str, str], url: str, **query: Any) -> Any:
    sep = "&" if "?" in url else "?"
    qs = "&".join(f"{k}={v}" for k, v in query.items() if v is not None)
    resp = client.get(url + (sep + qs if qs else ""), headers=auth)
    assert resp.status_code == 200, (url, query, resp.get_data(as_text=True))
    return resp.json


def _identity(item: Any) -> str:
    return json.dumps(item, sort_keys=True)


def walk(client: FlaskClient, auth: dict[str, str], url: str, limit: int,
         expected: int) -> list[Any]:
    """Follow ``next_cursor`` from the first page to the one whose ``next_cursor`` is null."""
    seen: list[Any] = []
    cursor = None
    for _ in range(math.ceil(expected / limit) + 2):
        page = _get(client, auth, url, limit=limit, cursor=cursor)
        assert set(page) >= {"items", "next_cursor"}, url
        assert len(page["items"]) <= limit, url
        seen += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return seen
        assert page["items"], f"{url}: an empty page that is not the last"
    raise AssertionError(f"{url}: no page with next_cursor null after {len(seen)} items")


@pytest.fixture
def seeded(client: FlaskClient, auth: dict[str, str], catalogue: None,
           customer_id: str) -> dict[str, str]:
    """Several items in every list: purposes (the catalogue), systems with webhooks (so
    consent changes make deliveries), requests, decisions, statements, TC strings."""
    for n in range(3):
        made = client.post("/api/v1/systems", json={
            "name": f"crm-{n}", "scopes": ["consents:read"],
            "webhook_url": f"http://127.0.0.1:9/hook{n}"}, headers=auth)
        assert made.status_code == 201, made.json
    for purpose, granted in [("marketing.email", True), ("marketing.sms", True),
                             ("marketing.email", False), ("analytics.behaviour", True)]:
        done = client.post(f"/api/v1/customers/{customer_id}/consents",
                           json={"purpose": purpose, "granted": granted}, headers=auth)
        assert done.status_code == 201, done.json
    for n in range(MIN_ITEMS):
        assert client.post(f"/api/v1/customers/{customer_id}/statements",
                           json={"text": f"statement {n}"}, headers=auth).status_code == 201
        assert client.post(f"/api/v1/customers/{customer_id}/tcf",
                           json={"tc_string": tc_string(cmp_id=100 + n)},
                           headers=auth).status_code == 201
        assert client.post("/api/v1/requests", json={
            "type": "access", "email": f"requester{n}@example.org"},
            headers=auth).status_code == 201
    return {"customer_id": customer_id}


@pytest.fixture
def lists(client: FlaskClient, seeded: dict[str, str],
          auth: dict[str, str]) -> dict[str, tuple[str, int]]:
    """Every list of the served document: its URL and how many items it holds now."""
    spec = client.get("/api/openapi.json").json
    found = list_operations(spec)
    assert set(found) >= KNOWN_LISTS
    out = {}
    for template in found:
        url = _path(template, seeded)
        whole = _get(client, auth, url, limit=MAX_LIMIT)
        assert whole["next_cursor"] is None, url
        assert len(whole["items"]) >= MIN_ITEMS, f"seed the list {template}: too few items"
        out[template] = (url, len(whole["items"]))
    return out


def test_openapi_declares_limit_and_cursor_on_every_list(client: FlaskClient) -> None:
    """Each list operation documents the `limit` (1-1000) and `cursor` query parameters."""
    spec = client.get("/api/openapi.json").json
    found = list_operations(spec)
    assert set(found) >= KNOWN_LISTS
    for path, op in found.items():
        params = {p["name"]: p for p in op.get("parameters", []) if p.get("in") == "query"}
        assert {"limit", "cursor"} <= set(params), path
        limit = params["limit"]["schema"]
        assert (limit.get("minimum"), limit.get("maximum"), limit.get("default")) == (
            1, MAX_LIMIT, DEFAULT_LIMIT), path
        assert params["cursor"]["schema"]["type"] == "string", path


# The seeded hub is read, never changed, by the walks: one hub for every example.
@settings(max_examples=12, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_walking_every_list_yields_each_item_once_and_ends_with_null_cursor(
        client: FlaskClient, auth: dict[str, str], lists: dict[str, tuple[str, int]],
        data: st.DataObject) -> None:
    """Pages of a random size, followed by `next_cursor`, give each item exactly once, in
    the list's order, and the last page says `next_cursor: null`."""
    for template, (url, count) in sorted(lists.items()):
        limit = data.draw(st.integers(min_value=1, max_value=count + 2), label=template)
        reference = walk(client, auth, url, MAX_LIMIT, count)
        walked = walk(client, auth, url, limit, len(reference) + MAX_LIMIT)
        ids = [_identity(i) for i in walked]
        assert len(ids) == len(set(ids)), f"{template}: an item came twice"
        # Reading some lists is audited: the audit log may grow during the walk, at its end.
        assert ids[:len(reference)] == [_identity(i) for i in reference], template
        assert len(walked) == len(reference) or template == "/api/v1/audit", template


def test_default_page_is_50_items(client: FlaskClient, auth: dict[str, str],
                                  seeded: dict[str, str]) -> None:
    """Without `limit` a page holds at most 50 items (the audit log has more by now)."""
    for n in range(60):
        client.post("/api/v1/customers", json={"email": f"many{n}@example.org"}, headers=auth)
    page = _get(client, auth, "/api/v1/audit")
    assert len(page["items"]) == DEFAULT_LIMIT and page["next_cursor"] is not None


BAD_LIMITS = ["0", "1001", "-3", "abc", "2.5", ""]
BAD_CURSORS = [
    "garbage!", "e30", encode_cursor({"after": {"x": 1}}), encode_cursor({"after": "a\x00b"}),
    encode_cursor({"due": 1, "id": "x"}), encode_cursor({"at": "yesterday", "id": 3}),
    "x" * 600]


def test_a_limit_out_of_range_or_a_bad_cursor_is_422_naming_it_on_every_list(
        client: FlaskClient, auth: dict[str, str], lists: dict[str, tuple[str, int]]) -> None:
    """`limit` outside 1-1000 (or no number) and a cursor not given out are 422 problems
    naming the parameter, on every list."""
    for template, (url, _) in lists.items():
        for name, values in (("limit", BAD_LIMITS), ("cursor", BAD_CURSORS)):
            for value in values:
                resp = client.get(f"{url}?{name}={value}", headers=auth)
                assert resp.status_code == 422, (template, name, value, resp.get_data())
                assert resp.content_type == "application/problem+json"
                assert list(resp.json["errors"]) == [name], (template, value)
                assert SEED_EMAIL not in resp.get_data(as_text=True)


def test_a_cursor_naming_no_item_of_the_list_is_422(
        client: FlaskClient, auth: dict[str, str], seeded: dict[str, str]) -> None:
    """A list held whole continues after the item its cursor names: a cursor naming no
    item of it was not given out."""
    forged = encode_cursor({"after": "no-such-item"})
    for url in ("/api/v1/purposes", f"/api/v1/customers/{seeded['customer_id']}/consents",
                f"/api/v1/customers/{seeded['customer_id']}/consents/history"):
        resp = client.get(f"{url}?cursor={forged}", headers=auth)
        assert resp.status_code == 422 and list(resp.json["errors"]) == ["cursor"], url


def _filtered_walk(client: FlaskClient, auth: dict[str, str], url: str) -> list[Any]:
    return walk(client, auth, url, 1, MAX_LIMIT)


def test_filters_hold_on_every_page(client: FlaskClient, auth: dict[str, str],
                                    seeded: dict[str, str]) -> None:
    """A filter and pagination together: the pages of a filtered list, one item each, are
    exactly the filtered items of the whole list."""
    cid = seeded["customer_id"]
    cases = {
        "/api/v1/requests?type=access&status=pending_verification":
            lambda i: i["type"] == "access" and i["status"] == "pending_verification",
        "/api/v1/audit?action=consent.grant": lambda i: i["action"] == "consent.grant",
        f"/api/v1/audit?customer_id={cid}": lambda i: i["customer_id"] == cid,
        "/api/v1/webhooks/deliveries?system=crm-1": lambda i: i["system"] == "crm-1",
    }
    for url, keep in cases.items():
        base = url.split("?")[0]
        everything = walk(client, auth, base, MAX_LIMIT, MAX_LIMIT)
        expected = [i for i in everything if keep(i)]
        assert len(expected) >= 2, url  # so that a page of one item is not the whole list
        got = _filtered_walk(client, auth, url)
        if base == "/api/v1/audit":  # reads above were audited after `everything` was read
            got = [i for i in got if i["seq"] <= everything[-1]["seq"]]
        assert got == expected, url


def test_a_limited_system_pages_only_its_purposes(client: FlaskClient, auth: dict[str, str],
                                                  seeded: dict[str, str]) -> None:
    """A system limited to purposes walks the purposes and consents it may use, no more."""
    made = client.post("/api/v1/systems", json={
        "name": "mailer", "scopes": ["consents:read"],
        "purposes": ["marketing.email", "marketing.sms", "analytics.behaviour"]}, headers=auth)
    limited = {"Authorization": f"Bearer {made.json['api_key']}"}
    keys = [p["key"] for p in walk(client, limited, "/api/v1/purposes", 1, 10)]
    assert keys == ["analytics.behaviour", "marketing.email", "marketing.sms"]
    states = walk(client, limited, f"/api/v1/customers/{seeded['customer_id']}/consents", 2, 10)
    assert [s["purpose"] for s in states] == keys


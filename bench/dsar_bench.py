"""Data subject request benchmark (issue 4): export, erasure, listing, against a served hub.

Targets on this machine: export of a customer with 10,000 events in <= 2 s; the hub's part
of an erasure <= 50 ms at p50; listing 1,000 open requests in <= 200 ms.

    .venv/bin/python -m bench.dsar_bench [--backend sqlite|postgres] [--erasures 50]

With ``--intake`` (issue 14) it measures instead DSAR intake against the consent write on
the same server in the same run (bench/dsar_intake.py).
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import requests

from bench import servers


def _session(server: servers.Server, key: str) -> requests.Session:
    s = requests.Session()
    s.headers["Authorization"] = f"Bearer {key}"
    s.base = server.base_url  # type: ignore[attr-defined]
    return s


def _post(s: requests.Session, path: str, body: dict[str, Any]) -> Any:
    resp = s.post(s.base + path, json=body, timeout=120)  # type: ignore[attr-defined]
    resp.raise_for_status()
    return resp.json()


def _customer(s: requests.Session, i: int) -> str:
    return str(_post(s, "/api/v1/customers", {"email": f"dsar{i}@example.com", "first_name": "D",
                                              "last_name": f"S{i}"})["id"])


def export_run(s: requests.Session, events: int) -> dict[str, float]:
    cid = _customer(s, 0)
    _post(s, f"/api/v1/customers/{cid}/consents", {"purpose": "analytics.behaviour", "granted": True})
    start = datetime(2026, 1, 1, tzinfo=UTC)
    for chunk in range(0, events, 1000):
        _post(s, "/api/v1/events", {"events": [
            {"customer_id": cid, "type": "product_view", "purpose": "analytics.behaviour",
             "occurred_at": (start + timedelta(seconds=i)).isoformat(),
             "properties": {"sku": f"SKU-{i}"}} for i in range(chunk, min(chunk + 1000, events))]})
    t0 = time.perf_counter()
    req = _post(s, "/api/v1/requests", {"type": "access", "customer_id": cid,
                                        "identity_verified": True, "verification_method": "bench"})
    built = time.perf_counter() - t0
    t1 = time.perf_counter()
    zipped = s.get(s.base + f"/api/v1/requests/{req['id']}/export", timeout=120)  # type: ignore[attr-defined]
    zipped.raise_for_status()
    download = time.perf_counter() - t1
    return {"build_s": built, "download_s": download, "total_s": built + download,
            "bytes": float(len(zipped.content))}


def erasure_run(s: requests.Session, n: int) -> dict[str, float]:
    ids = [_customer(s, 1000 + i) for i in range(n)]
    for cid in ids:
        _post(s, f"/api/v1/customers/{cid}/consents", {"purpose": "marketing.sms", "granted": True})
    times = []
    for cid in ids:
        t0 = time.perf_counter()
        req = _post(s, "/api/v1/requests", {"type": "erasure", "customer_id": cid,
                                            "identity_verified": True,
                                            "verification_method": "bench"})
        times.append((time.perf_counter() - t0) * 1000)
        assert req["status"] == "completed", req
    times.sort()
    return {"p50_ms": statistics.median(times), "p99_ms": times[min(len(times) - 1, int(len(times) * 0.99))]}


def listing_run(s: requests.Session, n: int) -> dict[str, float]:
    for i in range(n):
        _post(s, "/api/v1/requests", {"type": "access", "email": f"open{i}@example.net"})
    samples = []
    for _ in range(5):
        t0 = time.perf_counter()
        page = s.get(s.base + "/api/v1/requests?status=pending_verification&limit=1000",  # type: ignore[attr-defined]
                     timeout=120).json()
        samples.append((time.perf_counter() - t0) * 1000)
        assert len(page["items"]) == min(n, 1000)
    return {"p50_ms": statistics.median(samples), "min_ms": min(samples)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="sqlite", choices=["sqlite", "postgres"])
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--erasures", type=int, default=50)
    parser.add_argument("--open-requests", type=int, default=1000)
    parser.add_argument("--intake", action="store_true",
                        help="DSAR create against the consent write (bench/dsar_intake.py)")
    args, rest = parser.parse_known_args(argv)
    if args.intake:
        from bench import dsar_intake

        return dsar_intake.main([*rest, "--backend", args.backend])
    if rest:
        parser.error(f"unrecognised arguments: {' '.join(rest)}")
    # The folder outlives the server: the stack (server, PostgreSQL) closes first.
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        factory = servers.BackendFactory(args.backend, Path(tmp), stack)
        instance = factory.new_instance("dsar")
        server = stack.enter_context(servers.serve(instance))
        s = _session(server, instance.api_key)
        # Intake limits (5 per subject an hour) would stop the listing seed: one subject each.
        export = export_run(s, args.events)
        erasure = erasure_run(s, args.erasures)
        listing = listing_run(s, args.open_requests)
    print(f"backend: {args.backend}")
    print(f"export of a customer with {args.events} events: build {export['build_s']:.2f} s, "
          f"download {export['download_s']:.2f} s, total {export['total_s']:.2f} s "
          f"({export['bytes'] / 1e6:.1f} MB)  target <= 2 s")
    print(f"erasure (hub's part, whole request): p50 {erasure['p50_ms']:.0f} ms, "
          f"p99 {erasure['p99_ms']:.0f} ms  target p50 <= 50 ms")
    print(f"listing {args.open_requests} open requests: p50 {listing['p50_ms']:.0f} ms  "
          f"target <= 200 ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

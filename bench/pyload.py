"""Fallback load generator when wrk cannot be installed: one process per connection.

Each process keeps one HTTP/1.1 connection open and sends the same requests as the
Lua scripts in bench/scripts/. It costs far more client CPU per request than wrk, on
the same two cores as the server, so its figures are lower and are marked "python".
"""

from __future__ import annotations

import http.client
import json
import multiprocessing
import random
import statistics
import time
from urllib.parse import urlsplit

from bench.wrk import LoadResult, LoadSettings


def _request(endpoint: str, worker: int, n: int, args: tuple[str, ...]) -> tuple[str, str, bytes]:
    if endpoint == "ping":
        return "GET", "/api/v1/ping", b""
    if endpoint == "create":
        tag = args[0] if args else "run"
        body = {"email": f"c-{tag}-{worker}-{n}@example.com", "first_name": "Ada",
                "last_name": "Lovelace", "phone": f"+49151{(worker * 7919 + n) % 10**8:08d}",
                "address": {"city": "Berlin", "country": "DE"}}
        return "POST", "/api/v1/customers", json.dumps(body).encode()
    if endpoint == "lookup":
        body = {"email": f"seed{random.randrange(int(args[0]))}@example.com"}
        return "POST", "/api/v1/customers/lookup", json.dumps(body).encode()
    raise ValueError(endpoint)


def _ok(endpoint: str, status: int, body: bytes) -> bool:
    if endpoint == "create":
        return status == 201
    if endpoint == "lookup":
        return status == 200 and b'"id"' in body
    return status == 200


def _worker(base_url: str, endpoint: str, worker: int, seconds: float, api_key: str,
            args: tuple[str, ...], out: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    parts = urlsplit(base_url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    headers = {"Content-Type": "application/json"}
    if endpoint != "ping":
        headers["Authorization"] = f"Bearer {api_key}"
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    misses = errors = n = 0
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        n += 1
        method, path, body = _request(endpoint, worker, n, args)
        start = time.perf_counter()
        try:
            conn.request(method, path, body=body or None, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
        except (OSError, http.client.HTTPException):
            errors += 1
            conn.close()
            conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
            continue
        latencies.append(time.perf_counter() - start)
        statuses[str(resp.status)] = statuses.get(str(resp.status), 0) + 1
        misses += not _ok(endpoint, resp.status, data)
    conn.close()
    out.put((latencies, statuses, misses, errors))


def run_python(base_url: str, endpoint: str, settings: LoadSettings, *,
               duration: float | None = None, args: tuple[str, ...] = (),
               api_key: str = "") -> LoadResult:
    seconds = settings.duration if duration is None else duration
    queue: multiprocessing.Queue = multiprocessing.Queue()  # type: ignore[type-arg]
    procs = [multiprocessing.Process(target=_worker, args=(
        base_url, endpoint, i + 1, seconds, api_key, args, queue))
        for i in range(settings.connections)]
    start = time.perf_counter()
    for p in procs:
        p.start()
    results = [queue.get(timeout=seconds + 120) for _ in procs]
    for p in procs:
        p.join(timeout=30)
        if p.is_alive():
            p.kill()
    elapsed = time.perf_counter() - start
    latencies = sorted(x for r in results for x in r[0])
    statuses: dict[str, int] = {}
    for r in results:
        for k, v in r[1].items():
            statuses[k] = statuses.get(k, 0) + v

    def pct(q: float) -> float:
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000 if latencies else 0.0

    return LoadResult(
        endpoint=endpoint, tool="python", requests=len(latencies), duration_s=round(elapsed, 3),
        rps=len(latencies) / elapsed if elapsed else 0.0, p50_ms=pct(0.50), p90_ms=pct(0.90),
        p99_ms=pct(0.99), mean_ms=statistics.fmean(latencies) * 1000 if latencies else 0.0,
        max_ms=latencies[-1] * 1000 if latencies else 0.0, statuses=statuses,
        misses=sum(r[2] for r in results),
        socket_errors={"errors": sum(r[3] for r in results)} if any(r[3] for r in results) else {},
    )

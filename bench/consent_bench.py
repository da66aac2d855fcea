"""Consent and the gate (issue 3): `python -m bench.consent_bench [--backend sqlite|postgres|all]`.

For each backend, in a fresh instance (`privacy-hub init --demo`), 1,000,000 customers
and their consent states are written straight into the database with SQLAlchemy Core
(the API would take hours), then `privacy-hub serve` answers, on 127.0.0.1:

- single check: `GET /api/v1/consent-check` for random seeded customers (wrk);
- batch check: `POST /api/v1/consent-check` with 10,000 random seeded ids (Python
  client threads), reported as decisions per second;
- audience: `POST /api/v1/audiences` over all customers, a client following
  `next_cursor` with `limit` 100,000, total wall time, for a consent purpose
  (marketing.sms) and a contract purpose (orders.fulfilment);
- consent write: `POST /api/v1/customers/{id}/consents` (wrk), granted true/false in turn;

each with p50/p99 and a ratio to `GET /api/v1/ping` (no auth, no database) measured in
the same run with the same settings. Per round: ping, check, ping, batch, ping,
audience (both purposes), ping, write, ping; every figure's baseline is the mean of the
pings just before and after it. Figures only, never assertions.

The table goes to stdout, the JSON to bench/out/consent-<time>.json, and the figures to
the "Consent and the gate (issue 3)" section of bench/README.md (`--no-readme` skips it).
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import itertools
import json
import random
import re
import shutil
import statistics
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench import profiling, report, servers
from bench.wrk import LoadSettings, ensure_wrk, run_wrk

OUT = Path(__file__).resolve().parent / "out"
README = Path(__file__).resolve().parent / "README.md"
SECTION = "## Consent and the gate (issue 3)"
BACKENDS = ("sqlite", "postgres")

CONSENT_PURPOSE = "marketing.sms"       # consent, direct marketing, no double opt-in
CONTRACT_PURPOSE = "orders.fulfilment"  # contract
OTHER_PURPOSE = "analytics.behaviour"   # consent; seeded so the state table holds >1 purpose

#: Targets from the issue, on this machine.
TARGET_CHECK_RATIO = 0.8
TARGET_BATCH_DECISIONS = 200_000.0
TARGET_AUDIENCE_SECONDS = 2.0
TARGET_WRITE_RATIO = 0.3


# --------------------------------------------------------------------------- seeding


@dataclass
class Seeded:
    """What was written, and which seeded customers each audience must contain."""

    ids: list[str]
    seconds: float
    consent_rows: int
    objections: int
    restricted: int
    expected: dict[str, set[str]] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        return {"customers": len(self.ids), "seconds": round(self.seconds, 1),
                "consent_state_rows": self.consent_rows, "objections": self.objections,
                "restricted": self.restricted,
                "expected_allowed": {k: len(v) for k, v in self.expected.items()}}


def database_url(env: dict[str, str]) -> str:
    url = env.get("PRIVACY_HUB_DATABASE_URL")
    return url or f"sqlite:///{Path(env['PRIVACY_HUB_INSTANCE_PATH']) / 'hub.db'}"


def seed(env: dict[str, str], count: int, *, rng_seed: int = 7, chunk: int = 25_000) -> Seeded:
    """Bulk-insert ``count`` customers and their consent states (SQLAlchemy Core).

    Per customer: marketing.sms granted (50 %), withdrawn (25 %) or never asked (25 %);
    analytics.behaviour granted (30 %) or refused (20 %); 1 % object to all direct
    marketing ("*"), 0.5 % are restricted (Art. 18). The vault's ciphertext and
    blind-index columns stay NULL: the gate never reads them.
    """
    from sqlalchemy import insert, select, text

    from consent.models import ConsentState, Objection, ProcessingFlags, PurposeRow
    from privacy_hub.db import make_engine
    from privacy_hub.vault.models import Customer

    url = database_url(env)
    # A seeding step, not the measured server: no fsync per chunk on SQLite.
    engine = make_engine(url, sqlite_synchronous="OFF")
    rng = random.Random(rng_seed)
    started = time.perf_counter()
    ids: list[str] = []
    sms_ok: set[str] = set()
    contract_ok: set[str] = set()
    consent_rows = objections = restricted = 0
    try:
        with engine.connect() as conn:
            versions = dict(conn.execute(select(PurposeRow.key, PurposeRow.version)).all())
        base = datetime.now(UTC) - timedelta(days=30)
        for start in range(0, count, chunk):
            customers, states, objs, flags = [], [], [], []
            for i in range(start, min(count, start + chunk)):
                cid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
                ids.append(cid)
                at = base + timedelta(seconds=i % 2_000_000)
                customers.append({"id": cid, "status": "active", "key_version": 1,
                                  "created_at": at, "updated_at": at})
                objected = rng.random() < 0.01
                is_restricted = rng.random() < 0.005
                r = rng.random()
                if r < 0.75:
                    status = "granted" if r < 0.5 else "withdrawn"
                    states.append(_state(cid, CONSENT_PURPOSE, status,
                                         versions[CONSENT_PURPOSE], at))
                    if status == "granted" and not objected and not is_restricted:
                        sms_ok.add(cid)
                r = rng.random()
                if r < 0.5:
                    states.append(_state(cid, OTHER_PURPOSE, "granted" if r < 0.3 else "refused",
                                         versions[OTHER_PURPOSE], at))
                if objected:
                    objs.append({"customer_id": cid, "purpose": "*", "created_at": at})
                if is_restricted:
                    flags.append({"customer_id": cid, "restricted": True,
                                  "restriction_ground": "accuracy", "erased": False,
                                  "updated_at": at})
                else:
                    contract_ok.add(cid)
            with engine.begin() as conn:
                conn.execute(insert(Customer.__table__), customers)
                conn.execute(insert(ConsentState.__table__), states)
                if objs:
                    conn.execute(insert(Objection.__table__), objs)
                if flags:
                    conn.execute(insert(ProcessingFlags.__table__), flags)
            consent_rows += len(states)
            objections += len(objs)
            restricted += len(flags)
            done = min(count, start + chunk)
            if done % 200_000 < chunk or done == count:
                print(f"  seeded {done:,}/{count:,} customers "
                      f"({time.perf_counter() - started:.0f} s)", file=sys.stderr)
        if engine.dialect.name == "postgresql":
            # What autovacuum would do shortly after a bulk load; the hub never runs it.
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(text("ANALYZE"))
    finally:
        engine.dispose()
    return Seeded(ids=ids, seconds=time.perf_counter() - started, consent_rows=consent_rows,
                  objections=objections, restricted=restricted,
                  expected={CONSENT_PURPOSE: sms_ok, CONTRACT_PURPOSE: contract_ok})


def _state(cid: str, purpose: str, status: str, version: int, at: datetime) -> dict[str, Any]:
    return {"customer_id": cid, "purpose": purpose, "status": status, "purpose_version": version,
            "granted_at": at if status == "granted" else None, "expires_at": None,
            "source": "bench", "last_event_id": str(uuid.uuid4()),
            "receipt_id": str(uuid.uuid4()), "notice_version": "2026-10", "updated_at": at}


# --------------------------------------------------------------------------- load


def pct(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list (0.0 if empty)."""
    if not sorted_values:
        return 0.0
    return sorted_values[min(len(sorted_values) - 1, max(0, round(q * len(sorted_values)) - 1))]


class Client:
    """One keep-alive HTTP/1.1 connection to the server."""

    def __init__(self, port: int, api_key: str, timeout: float = 120) -> None:
        self.port, self.timeout = port, timeout
        self.headers = {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"}
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)

    def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        try:
            self.conn.request("POST", path, body=body, headers=self.headers)
            resp = self.conn.getresponse()
            return resp.status, resp.read()
        except (OSError, http.client.HTTPException):
            self.close()
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
            raise

    def close(self) -> None:
        self.conn.close()


def batch_load(port: int, api_key: str, ids: list[str], *, clients: int, seconds: float,
               size: int, purpose: str = CONSENT_PURPOSE, rng_seed: int = 11) -> dict[str, Any]:
    """`clients` threads posting batches of ``size`` random seeded ids for ``seconds``."""
    rng = random.Random(rng_seed)
    bodies = [json.dumps({"purpose": purpose, "customer_ids": rng.sample(ids, size)}).encode()
              for _ in range(max(4, clients * 2))]
    lock = threading.Lock()
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    counters = {"misses": 0, "errors": 0, "decisions": 0, "allowed": 0}
    deadline = time.perf_counter() + seconds

    def worker(n: int) -> None:
        client = Client(port, api_key)
        mine: list[float] = []
        local = {"misses": 0, "errors": 0, "decisions": 0, "allowed": 0}
        codes: dict[str, int] = {}
        k = n
        try:
            while time.perf_counter() < deadline:
                body = bodies[k % len(bodies)]
                k += clients
                t0 = time.perf_counter()
                try:
                    status, data = client.post("/api/v1/consent-check", body)
                except (OSError, http.client.HTTPException):
                    local["errors"] += 1
                    continue
                mine.append(time.perf_counter() - t0)
                codes[str(status)] = codes.get(str(status), 0) + 1
                got = data.count(b'"customer_id"') if status == 200 else 0
                if got != size:
                    local["misses"] += 1
                    continue
                local["decisions"] += got
                local["allowed"] += len(re.findall(rb'"allowed":\s*true', data))
        finally:
            client.close()
        with lock:
            latencies.extend(mine)
            for key, v in codes.items():
                statuses[key] = statuses.get(key, 0) + v
            for key, v in local.items():
                counters[key] += v

    t_start = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=seconds + 300)
    elapsed = time.perf_counter() - t_start
    latencies.sort()
    return {
        "requests": len(latencies), "duration_s": round(elapsed, 3),
        "rps": len(latencies) / elapsed, "decisions_per_s": counters["decisions"] / elapsed,
        "decisions": counters["decisions"], "allowed_fraction":
            counters["allowed"] / counters["decisions"] if counters["decisions"] else 0.0,
        "p50_ms": pct(latencies, 0.50) * 1000, "p90_ms": pct(latencies, 0.90) * 1000,
        "p99_ms": pct(latencies, 0.99) * 1000,
        "mean_ms": statistics.fmean(latencies) * 1000 if latencies else 0.0,
        "max_ms": latencies[-1] * 1000 if latencies else 0.0,
        "statuses": statuses, "misses": counters["misses"], "errors": counters["errors"],
        "clients": clients, "batch_size": size,
    }


def audience_run(port: int, api_key: str, purpose: str, *, limit: int) -> dict[str, Any]:
    """Every page of the purpose's audience over all customers, as a client iterates it."""
    client = Client(port, api_key, timeout=300)
    items: list[str] = []
    pages: list[float] = []
    cursor: str | None = None
    t_start = time.perf_counter()
    try:
        while True:
            body: dict[str, Any] = {"purpose": purpose, "limit": limit}
            if cursor:
                body["cursor"] = cursor
            t0 = time.perf_counter()
            status, data = client.post("/api/v1/audiences", json.dumps(body).encode())
            if status != 200:
                raise RuntimeError(f"audience page {len(pages) + 1} for {purpose}: HTTP {status}: "
                                   f"{data[:300]!r}")
            page = json.loads(data)
            pages.append(time.perf_counter() - t0)
            items.extend(page["items"])
            cursor = page.get("next_cursor")
            if not cursor:
                break
    finally:
        client.close()
    total = time.perf_counter() - t_start
    lat = sorted(pages)
    return {"purpose": purpose, "seconds": total, "pages": len(pages), "items": len(items),
            "p50_ms": pct(lat, 0.50) * 1000, "p99_ms": pct(lat, 0.99) * 1000,
            "max_ms": lat[-1] * 1000, "_items": items}


def check_audience(result: dict[str, Any], seeded: Seeded) -> None:
    """Does the audience hold exactly the seeded customers the gate must allow?"""
    expected = seeded.expected.get(result["purpose"])
    items: list[str] = result.pop("_items")
    if expected is None:
        return
    got = set(items)
    seeded_ids = set(seeded.ids)
    result["expected_seeded"] = len(expected)
    result["exact"] = (got & seeded_ids) == expected and len(got) == len(items)
    result["extra_not_seeded"] = len(got - seeded_ids)  # the demo's own customers


def wrk_measure(tool: str, server: servers.Server, script: str, settings: LoadSettings, *,
                seconds: float, api_key: str, extra: tuple[str, ...], run_dir: Path,
                db_pid: int | None) -> dict[str, Any]:
    """One wrk run, with the hub's (and PostgreSQL's) CPU per request."""
    cpu0 = servers.tree_cpu_seconds(server.process.pid)
    db0 = servers.tree_cpu_seconds(db_pid) if db_pid else None
    res = run_wrk(tool, server.base_url, script, settings, duration=seconds, args=extra,
                  api_key=api_key, log_dir=run_dir)
    cpu1 = servers.tree_cpu_seconds(server.process.pid)
    row = res.as_dict()
    row["ok_fraction"] = res.ok_fraction
    row["server_cpu_ms"] = (cpu1 - cpu0) * 1000 / max(1, res.requests)
    if db0 is not None and db_pid:
        row["db_cpu_ms"] = (servers.tree_cpu_seconds(db_pid) - db0) * 1000 / max(1, res.requests)
    return row


def with_cpu(server: servers.Server, db_pid: int | None, fn: Any, per: str) -> dict[str, Any]:
    """Run ``fn()`` and add the hub's CPU time per ``per`` (requests or pages)."""
    cpu0 = servers.tree_cpu_seconds(server.process.pid)
    db0 = servers.tree_cpu_seconds(db_pid) if db_pid else None
    row: dict[str, Any] = fn()
    n = max(1, int(row.get(per, 1)))
    row["server_cpu_ms"] = (servers.tree_cpu_seconds(server.process.pid) - cpu0) * 1000 / n
    if db0 is not None and db_pid:
        row["db_cpu_ms"] = (servers.tree_cpu_seconds(db_pid) - db0) * 1000 / n
    return row


# --------------------------------------------------------------------------- the run


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.consent_bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backend", action="append", choices=(*BACKENDS, "all"),
                   help="repeatable; default: sqlite")
    p.add_argument("--duration", type=float, default=10, help="seconds per measured run")
    p.add_argument("--warmup", type=float, default=3, help="seconds of warm-up before each")
    p.add_argument("--rounds", type=int, default=2, help="rounds (medians are reported)")
    p.add_argument("--threads", type=int, default=2, help="wrk threads")
    p.add_argument("--connections", type=int, default=8, help="wrk connections")
    p.add_argument("--workers", type=int, default=2, help="server worker processes")
    p.add_argument("--server-threads", type=int, default=4, help="threads per worker")
    p.add_argument("--customers", type=int, default=1_000_000, help="customers seeded (SQLite)")
    p.add_argument("--pg-customers", type=int, default=None,
                   help="customers seeded on PostgreSQL (default: --customers)")
    p.add_argument("--ids-file-size", type=int, default=100_000,
                   help="random seeded ids the wrk scripts pick from")
    p.add_argument("--batch-size", type=int, default=10_000, help="ids per batch check")
    p.add_argument("--batch-clients", type=int, default=4, help="concurrent batch clients")
    p.add_argument("--audience-limit", type=int, default=100_000, help="ids per audience page")
    p.add_argument("--py-spy", action="store_true",
                   help="after the measured rounds, profile the workers during extra runs of "
                        "each figure (not reported); stacks and summaries go to bench/out/")
    p.add_argument("--no-readme", action="store_true", help="do not update bench/README.md")
    p.add_argument("--keep", action="store_true", help="keep the temporary instances")
    args = p.parse_args(argv)
    chosen = args.backend or ["sqlite"]
    args.backends = list(BACKENDS) if "all" in chosen else list(dict.fromkeys(chosen))
    return args


def one_round(n: int, tool: str, server: servers.Server, args: argparse.Namespace,
              settings: LoadSettings, api_key: str, ids_file: Path, seeded: Seeded,
              run_dir: Path, db_pid: int | None) -> dict[str, Any]:
    say = lambda s: print(f"  round {n + 1} {s}", file=sys.stderr)  # noqa: E731
    pings: list[dict[str, Any]] = []
    out: dict[str, Any] = {"ping_runs": pings}

    def ping() -> None:
        row = wrk_measure(tool, server, "ping", settings, seconds=args.duration, api_key="",
                          extra=(), run_dir=run_dir, db_pid=db_pid)
        pings.append(row)
        say(f"ping          {row['rps']:8,.0f} req/s  p50 {row['p50_ms']:6.1f} ms  "
            f"p99 {row['p99_ms']:7.1f} ms  statuses {row['statuses']}")

    def wrk_figure(name: str, script: str) -> None:
        extra = (str(ids_file), CONSENT_PURPOSE)
        if args.warmup > 0:
            run_wrk(tool, server.base_url, script, settings, duration=args.warmup, args=extra,
                    api_key=api_key, log_dir=run_dir)
        row = wrk_measure(tool, server, script, settings, seconds=args.duration, api_key=api_key,
                          extra=extra, run_dir=run_dir, db_pid=db_pid)
        out[name] = row
        say(f"{name:13s} {row['rps']:8,.0f} req/s  p50 {row['p50_ms']:6.1f} ms  "
            f"p99 {row['p99_ms']:7.1f} ms  statuses {row['statuses']}  "
            f"hub CPU {row['server_cpu_ms']:.2f} ms/req")

    if args.warmup > 0:
        run_wrk(tool, server.base_url, "ping", settings, duration=args.warmup, log_dir=run_dir)
    ping()
    wrk_figure("check", "consent_check")
    ping()
    if args.warmup > 0:
        batch_load(server.port, api_key, seeded.ids, clients=args.batch_clients,
                   seconds=args.warmup, size=args.batch_size, rng_seed=n)
    row = with_cpu(server, db_pid, lambda: batch_load(
        server.port, api_key, seeded.ids, clients=args.batch_clients, seconds=args.duration,
        size=args.batch_size, rng_seed=100 + n), "requests")
    out["batch"] = row
    say(f"batch         {row['decisions_per_s']:8,.0f} decisions/s ({row['rps']:.1f} req/s)  "
        f"p50 {row['p50_ms']:6.1f} ms  p99 {row['p99_ms']:7.1f} ms  statuses {row['statuses']}  "
        f"misses {row['misses']}  hub CPU {row['server_cpu_ms']:.1f} ms/req")
    ping()
    for purpose, name in ((CONSENT_PURPOSE, "audience_consent"),
                          (CONTRACT_PURPOSE, "audience_contract")):
        row = with_cpu(server, db_pid, lambda p=purpose: audience_run(
            server.port, api_key, p, limit=args.audience_limit), "pages")
        check_audience(row, seeded)
        out[name] = row
        say(f"{name:17s} {row['seconds']:6.2f} s  {row['items']:,} allowed in "
            f"{row['pages']} pages  page p50 {row['p50_ms']:.0f} ms  p99 {row['p99_ms']:.0f} ms"
            f"  exact {row.get('exact')}  hub CPU {row['server_cpu_ms']:.0f} ms/page")
    ping()
    wrk_figure("write", "consent_write")
    ping()
    # Each figure's baseline: the mean of the pings just before and after it.
    base = [(a["rps"] + b["rps"]) / 2 for a, b in itertools.pairwise(pings)]
    out["check"]["baseline_rps"] = base[0]
    out["batch"]["baseline_rps"] = base[1]
    out["audience_consent"]["baseline_rps"] = base[2]
    out["audience_contract"]["baseline_rps"] = base[2]
    out["write"]["baseline_rps"] = base[3]
    return out


def summarise(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians over the rounds (for ping: over all its runs)."""
    med = statistics.median
    pings = [p for r in rounds for p in r["ping_runs"]]
    out: dict[str, Any] = {"ping": {
        "rps": med(p["rps"] for p in pings), "p50_ms": med(p["p50_ms"] for p in pings),
        "p99_ms": med(p["p99_ms"] for p in pings), "ratio": 1.0,
        "server_cpu_ms": med(p["server_cpu_ms"] for p in pings),
        "ok_fraction": min(p["ok_fraction"] for p in pings)}}
    for name in ("check", "write"):
        runs = [r[name] for r in rounds]
        out[name] = {
            "rps": med(r["rps"] for r in runs), "p50_ms": med(r["p50_ms"] for r in runs),
            "p99_ms": med(r["p99_ms"] for r in runs),
            "ratio": med(r["rps"] / r["baseline_rps"] for r in runs),
            "baseline_rps": med(r["baseline_rps"] for r in runs),
            "server_cpu_ms": med(r["server_cpu_ms"] for r in runs),
            "ok_fraction": min(r["ok_fraction"] for r in runs),
            "statuses": runs[-1]["statuses"]}
    runs = [r["batch"] for r in rounds]
    out["batch"] = {
        "decisions_per_s": med(r["decisions_per_s"] for r in runs),
        "rps": med(r["rps"] for r in runs), "p50_ms": med(r["p50_ms"] for r in runs),
        "p99_ms": med(r["p99_ms"] for r in runs),
        "ratio": med(r["decisions_per_s"] / r["baseline_rps"] for r in runs),
        "baseline_rps": med(r["baseline_rps"] for r in runs),
        "server_cpu_ms": med(r["server_cpu_ms"] for r in runs),
        "misses": sum(r["misses"] for r in runs), "clients": runs[0]["clients"],
        "batch_size": runs[0]["batch_size"],
        "allowed_fraction": med(r["allowed_fraction"] for r in runs)}
    for name in ("audience_consent", "audience_contract"):
        runs = [r[name] for r in rounds]
        out[name] = {
            "purpose": runs[0]["purpose"], "seconds": med(r["seconds"] for r in runs),
            "items": runs[0]["items"], "pages": runs[0]["pages"],
            "p50_ms": med(r["p50_ms"] for r in runs), "p99_ms": med(r["p99_ms"] for r in runs),
            "exact_first_round": runs[0].get("exact"),
            "server_cpu_ms_per_page": med(r["server_cpu_ms"] for r in runs),
            "baseline_rps": med(r["baseline_rps"] for r in runs)}
    return out


def profile(server: servers.Server, args: argparse.Namespace, tool: str, settings: LoadSettings,
            api_key: str, ids_file: Path, seeded: Seeded, run_dir: Path, backend: str
            ) -> dict[str, str]:
    """py-spy (on-CPU samples) on the workers during an extra, unreported run of each figure."""
    out: dict[str, str] = {}
    seconds = args.duration
    extra = (str(ids_file), CONSENT_PURPOSE)

    def audience_loop(purpose: str) -> None:
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            audience_run(server.port, api_key, purpose, limit=args.audience_limit)

    loads: dict[str, Any] = {
        "check": lambda: run_wrk(tool, server.base_url, "consent_check", settings,
                                 duration=seconds, args=extra, api_key=api_key),
        "batch": lambda: batch_load(server.port, api_key, seeded.ids, clients=args.batch_clients,
                                    seconds=seconds, size=args.batch_size),
        "audience_consent": lambda: audience_loop(CONSENT_PURPOSE),
        "audience_contract": lambda: audience_loop(CONTRACT_PURPOSE),
        "write": lambda: run_wrk(tool, server.base_url, "consent_write", settings,
                                 duration=seconds, args=extra, api_key=api_key),
        "ping": lambda: run_wrk(tool, server.base_url, "ping", settings, duration=seconds),
    }
    for name, fn in loads.items():
        for mode in ("cpu", "wall"):
            label = f"consent-{backend}-{name}-{mode}"
            procs = profiling.start(server.worker_pids(), seconds, run_dir, label,
                                    idle=mode == "wall")
            fn()
            paths = profiling.finish(procs)
            text = "\n".join(f"{share:6.1%}  {cat}" for cat, share in profiling.categorise(paths))
            text += "\n\n" + profiling.summarise(paths, top=40)
            path = run_dir / f"{label}-profile.txt"
            path.write_text(text)
            out[f"{name}-{mode}"] = str(path)
            print(f"  profile {label}: {path}", file=sys.stderr)
    return out


def bench_backend(backend: str, args: argparse.Namespace, tool: str, workdir: Path,
                  run_dir: Path, entry: dict[str, Any]) -> None:
    with contextlib.ExitStack() as stack:
        factory = servers.BackendFactory(backend, workdir, stack)
        entry["description"] = factory.description
        instance = factory.new_instance("consent")
        count = args.customers if backend == "sqlite" else (args.pg_customers or args.customers)
        seeded = seed(instance.env, count)
        entry["seed"] = seeded.summary()
        print(f"  {count:,} customers seeded in {seeded.seconds:.0f} s "
              f"({seeded.consent_rows:,} consent states)", file=sys.stderr)
        ids_file = workdir / f"{backend}-ids.txt"
        sample = random.Random(3).sample(seeded.ids, min(args.ids_file_size, len(seeded.ids)))
        ids_file.write_text("\n".join(sample) + "\n")
        settings = LoadSettings(threads=args.threads, connections=args.connections,
                                duration=args.duration, warmup=args.warmup)
        with servers.serve(instance, workers=args.workers, threads=args.server_threads) as server:
            print(f"  server {server.base_url}, workers {server.worker_pids()}", file=sys.stderr)
            db_pid = factory.database_pid()
            # One unmeasured pass over each audience first: the first full scan after the
            # bulk load warms the database's caches.
            for purpose in (CONSENT_PURPOSE, CONTRACT_PURPOSE):
                warm = audience_run(server.port, instance.api_key, purpose,
                                    limit=args.audience_limit)
                warm.pop("_items")
                print(f"  warm-up audience {purpose}: {warm['seconds']:.2f} s", file=sys.stderr)
            rounds = [one_round(n, tool, server, args, settings, instance.api_key, ids_file,
                                seeded, run_dir, db_pid) for n in range(args.rounds)]
            entry["rounds"] = rounds
            entry["summary"] = summarise(rounds)
            if args.py_spy:
                entry["profiles"] = profile(server, args, tool, settings, instance.api_key,
                                            ids_file, seeded, run_dir, backend)


# --------------------------------------------------------------------------- report


def table_rows(backend: str, data: dict[str, Any]) -> list[list[str]]:
    s = data["summary"]
    n = data["seed"]["customers"]

    def met(ok: bool) -> str:
        return "yes" if ok else "NO"

    ping, check, batch, write = s["ping"], s["check"], s["batch"], s["write"]
    rows = [
        ["GET /api/v1/ping (baseline)", f"{ping['rps']:,.0f} req/s", f"{ping['p50_ms']:.1f} ms",
         f"{ping['p99_ms']:.1f} ms", "1.00", "", "", f"{ping['server_cpu_ms']:.2f}"],
        ["GET /api/v1/consent-check (single)", f"{check['rps']:,.0f} req/s",
         f"{check['p50_ms']:.1f} ms", f"{check['p99_ms']:.1f} ms", f"{check['ratio']:.2f}",
         f">= {TARGET_CHECK_RATIO}x ping", met(check["ratio"] >= TARGET_CHECK_RATIO),
         f"{check['server_cpu_ms']:.2f}"],
        [f"POST /api/v1/consent-check (batch of {batch['batch_size']:,}, "
         f"{batch['clients']} clients)",
         f"{batch['decisions_per_s']:,.0f} decisions/s ({batch['rps']:.1f} req/s)",
         f"{batch['p50_ms']:.0f} ms", f"{batch['p99_ms']:.0f} ms", f"{batch['ratio']:.1f}",
         f">= {TARGET_BATCH_DECISIONS:,.0f} decisions/s",
         met(batch["decisions_per_s"] >= TARGET_BATCH_DECISIONS),
         f"{batch['server_cpu_ms']:.0f}"],
    ]
    for key, label in (("audience_consent", "consent"), ("audience_contract", "contract")):
        a = s[key]
        rows.append([
            f"POST /api/v1/audiences {a['purpose']} ({label}), all {n:,} customers",
            f"{a['seconds']:.2f} s ({a['items']:,} allowed, {a['pages']} pages)",
            f"{a['p50_ms']:.0f} ms/page", f"{a['p99_ms']:.0f} ms/page",
            f"{n / a['seconds'] / a['baseline_rps']:.1f}",
            f"<= {TARGET_AUDIENCE_SECONDS:g} s for 1,000,000",
            met(a["seconds"] <= TARGET_AUDIENCE_SECONDS and n >= 1_000_000)
            if n >= 1_000_000 else f"n/a ({n:,} seeded)",
            f"{a['server_cpu_ms_per_page']:.0f} per page"])
    rows.append(["POST /api/v1/customers/{id}/consents (write)", f"{write['rps']:,.0f} req/s",
                 f"{write['p50_ms']:.1f} ms", f"{write['p99_ms']:.1f} ms",
                 f"{write['ratio']:.2f}", f">= {TARGET_WRITE_RATIO}x ping",
                 met(write["ratio"] >= TARGET_WRITE_RATIO), f"{write['server_cpu_ms']:.2f}"])
    return rows


HEAD = ["figure", "throughput", "p50", "p99", "ratio to ping", "target", "met?",
        "hub CPU ms/req"]


def markdown_block(results: dict[str, Any], backend: str) -> str:
    data = results["backends"][backend]
    m, st, sd = results["machine"], results["settings"], data["seed"]
    lines = [
        f"#### {backend}",
        "",
        f"{data['description']}. Run {results['date']} on {m['cores']} cores ({m['cpu']}), "
        f"Python {m['python']}, {m['wrk']}; commit {results['code']['commit']}"
        + (" with uncommitted changes outside bench/" if results["code"]["uncommitted"] else "")
        + f". {sd['customers']:,} customers seeded ({sd['consent_state_rows']:,} consent "
        f"states, {sd['objections']:,} objections, {sd['restricted']:,} restricted) in "
        f"{sd['seconds']:.0f} s; wrk {st['threads']} threads, {st['connections']} connections, "
        f"{st['warmup']:g} s warm-up then {st['duration']:g} s per figure; batch: "
        f"{st['batch_clients']} client threads; {st['rounds']} round(s) (median); server "
        f"`--workers {st['workers']} --threads {st['server_threads']}`.",
        "",
        "| " + " | ".join(HEAD) + " |",
        "|" + "---|" * len(HEAD),
    ]
    lines += ["| " + " | ".join(r) + " |" for r in table_rows(backend, data)]
    notes = data.get("notes") or []
    if notes:
        lines += ["", *[f"- {x}" for x in notes]]
    return "\n".join(lines)


def update_readme(results: dict[str, Any], path: Path = README) -> list[str]:
    """Replace each measured backend's block between its markers in this section only."""
    text = path.read_text()
    at = text.find(SECTION)
    if at < 0:
        return []
    head, section = text[:at], text[at:]
    done = []
    for backend, data in results["backends"].items():
        if "summary" not in data:
            continue
        start, end = f"<!-- consent:{backend} -->", f"<!-- /consent:{backend} -->"
        pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.S)
        if not pattern.search(section):
            continue
        block = f"{start}\n{markdown_block(results, backend)}\n{end}"
        section = pattern.sub(lambda _m, b=block: b, section)
        done.append(backend)
    path.write_text(head + section)
    return done


def text_table(results: dict[str, Any]) -> str:
    lines = []
    for backend, data in results["backends"].items():
        if "summary" not in data:
            continue
        rows = [[backend, *r] for r in table_rows(backend, data)]
        head = ["backend", *HEAD]
        widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(head)]
        lines.append("  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)))
        lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.py_spy and profiling.py_spy() is None:
        print("--py-spy: py-spy is not installed (`.venv/bin/pip install py-spy`)", file=sys.stderr)
        return 2
    tool = ensure_wrk()
    if tool is None:
        print("wrk is not installed (apt-get install wrk)", file=sys.stderr)
        return 2
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    run_dir = OUT / f"consent-{stamp}"
    run_dir.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": report.machine(), "code": report.code_version(),
        "settings": {k: getattr(args, k) for k in (
            "duration", "warmup", "rounds", "threads", "connections", "workers",
            "server_threads", "customers", "pg_customers", "batch_size", "batch_clients",
            "audience_limit", "ids_file_size")},
        "backends": {},
    }
    workdir = Path(tempfile.mkdtemp(prefix="privacy-hub-consent-bench-"))
    failed = False
    try:
        for backend in args.backends:
            print(f"== {backend}", file=sys.stderr)
            entry: dict[str, Any] = {"notes": []}
            results["backends"][backend] = entry
            try:
                bench_backend(backend, args, tool, workdir, run_dir, entry)
            except Exception as exc:
                failed = True
                entry["error"] = f"{type(exc).__name__}: {exc}"
                print(f"  {backend} failed: {entry['error']}", file=sys.stderr)
    finally:
        if args.keep:
            print(f"instances kept in {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    (run_dir / "results.json").write_text(json.dumps(results, indent=2, default=str))
    print()
    print(text_table(results))
    print(f"JSON: {run_dir / 'results.json'}")
    if not args.no_readme:
        updated = update_readme(results)
        print(f"bench/README.md updated for: {', '.join(updated) or 'none'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

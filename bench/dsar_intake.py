"""DSAR intake against the consent write (issue 14), same server, same run.

    .venv/bin/python -m bench.dsar_bench --intake --backend sqlite|postgres [--customers 2000]
    .venv/bin/python -m bench.dsar_intake --backend sqlite --backend postgres --duration 5

For each backend: a fresh demo instance (`privacy-hub init --demo`), customers created over
the API (`seed<i>@example.com`), `privacy-hub serve` (2 workers x 4 threads). Then, per
round, for each figure: wrk with one connection (the median latency a single client
sees) and wrk with 2 threads and 8 connections (throughput, hub CPU per request):

- **consent write**: `POST /api/v1/customers/{id}/consents` (bench/scripts/consent_write.lua);
- **DSAR create (id)**: `POST /api/v1/requests` `{"type": "access", "customer_id": ...}`;
- **DSAR create (email)**: the same by `email` (the blind-index lookup included).

Every DSAR create is a request still to be verified: the verification mail is queued and
then sent by the in-process worker, whose CPU is in the hub's. Figures only, never
assertions; the JSON goes to bench/out/dsar-intake-<time>.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import data, servers
from bench.consent_bench import database_url, wrk_measure
from bench.wrk import LoadSettings, ensure_wrk, run_wrk

OUT = Path(__file__).resolve().parent / "out"
PREFIX = "seed"
FIGURES = (("consent write", "consent_write"), ("DSAR create (id)", "dsar_create"),
           ("DSAR create (email)", "dsar_create"))


def _ids(env: dict[str, str]) -> list[str]:
    from sqlalchemy import create_engine, text

    engine = create_engine(database_url(env))
    try:
        with engine.connect() as conn:
            return [r[0] for r in conn.execute(text("SELECT id FROM customers ORDER BY id"))]
    finally:
        engine.dispose()


def _extra(name: str, ids_file: Path, count: int) -> tuple[str, ...]:
    if name == "consent write":
        return (str(ids_file), "marketing.sms")
    if name == "DSAR create (id)":
        return (str(ids_file), "id")
    return (str(ids_file), "email", PREFIX, str(count))


def bench_backend(backend: str, args: argparse.Namespace, tool: str, workdir: Path
                  ) -> dict[str, Any]:
    one = LoadSettings(threads=1, connections=1, duration=args.duration, warmup=args.warmup)
    many = LoadSettings(threads=2, connections=8, duration=args.duration, warmup=args.warmup)
    result: dict[str, Any] = {"backend": backend, "rounds": []}
    with contextlib.ExitStack() as stack:
        factory = servers.BackendFactory(backend, workdir, stack)
        result["description"] = factory.description
        instance = factory.new_instance("intake")
        with servers.serve(instance) as server:
            seeded = data.seed_via_api(server.port, instance.api_key, args.customers, PREFIX)
            ids = _ids(instance.env)
            ids_file = workdir / f"{backend}-intake-ids.txt"
            ids_file.write_text("\n".join(ids) + "\n")
            print(f"  {backend}: {seeded:,} customers; server {server.base_url}",
                  file=sys.stderr)
            db_pid = factory.database_pid()
            for n in range(args.rounds):
                row: dict[str, Any] = {}
                for name, script in FIGURES:
                    extra = _extra(name, ids_file, args.customers)
                    if args.warmup > 0:
                        run_wrk(tool, server.base_url, script, many, duration=args.warmup,
                                args=extra, api_key=instance.api_key, log_dir=workdir)
                    single = wrk_measure(tool, server, script, one, seconds=args.duration,
                                         api_key=instance.api_key, extra=extra,
                                         run_dir=workdir, db_pid=db_pid)
                    loaded = wrk_measure(tool, server, script, many, seconds=args.duration,
                                         api_key=instance.api_key, extra=extra,
                                         run_dir=workdir, db_pid=db_pid)
                    row[name] = {"one_client": single, "eight": loaded}
                    print(f"  round {n + 1} {name:20s} 1 client p50 {single['p50_ms']:6.2f} ms"
                          f" ({single['rps']:5.0f} req/s) | 8: {loaded['rps']:6.0f} req/s "
                          f"p50 {loaded['p50_ms']:6.1f} ms, hub CPU "
                          f"{loaded['server_cpu_ms']:.2f} ms/req, statuses "
                          f"{loaded['statuses']}", file=sys.stderr)
                result["rounds"].append(row)
    result["summary"] = {
        name: {"p50_one_ms": statistics.median(r[name]["one_client"]["p50_ms"]
                                               for r in result["rounds"]),
               "rps_eight": statistics.median(r[name]["eight"]["rps"] for r in result["rounds"]),
               "cpu_ms": statistics.median(r[name]["eight"]["server_cpu_ms"]
                                           for r in result["rounds"])}
        for name, _ in FIGURES}
    return result


def table(results: list[dict[str, Any]]) -> str:
    lines = ["| backend | figure | p50, 1 client | req/s, 8 connections | hub CPU ms/req | "
             "req/s vs consent write |", "|---|---|---|---|---|---|"]
    for res in results:
        s = res["summary"]
        base = s["consent write"]["rps_eight"] or 1.0
        for name, _ in FIGURES:
            f = s[name]
            lines.append(f"| {res['backend']} | {name} | {f['p50_one_ms']:.2f} ms | "
                         f"{f['rps_eight']:,.0f} | {f['cpu_ms']:.2f} | "
                         f"{f['rps_eight'] / base:.2f}x |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.dsar_intake", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backend", action="append", choices=("sqlite", "sqlite-normal",
                                                           "postgres"))
    p.add_argument("--customers", type=int, default=2000)
    p.add_argument("--duration", type=float, default=5)
    p.add_argument("--warmup", type=float, default=2)
    p.add_argument("--rounds", type=int, default=1)
    args = p.parse_args(argv)
    tool = ensure_wrk()
    if tool is None:
        print("wrk is needed (apt-get install wrk)", file=sys.stderr)
        return 2
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for backend in dict.fromkeys(args.backend or ["sqlite"]):
            results.append(bench_backend(backend, args, tool, Path(tmp)))
    out = table(results)
    print(out)
    OUT.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    (OUT / f"dsar-intake-{stamp}.json").write_text(json.dumps(results, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

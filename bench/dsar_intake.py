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

Every DSAR create is a request still to be verified: the verification mail is queued in
its transaction and then sent by the in-process worker, whose CPU is in the hub's. Under
load the worker falls behind the requests, so after each run the bench waits until every
mail that is due has been sent ("drain") and reports the figures that include it too: req/s
over the run and the drain, and the hub's CPU per request over both (`incl. mail`); the
next run starts with an empty queue. With `--no-worker` the servers run without the
in-process worker (`privacy-hub serve --no-worker`): the request alone, its mail left
queued. Figures only, never assertions; the JSON goes to bench/out/dsar-intake-<time>.json.
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

#: longest the bench waits for the worker to send the mails a run queued (s)
DRAIN_TIMEOUT = 300.0

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


def _due_mails(env: dict[str, str]) -> int:
    """Jobs due now and not yet done (the verification mails of the runs so far)."""
    from sqlalchemy import create_engine, text

    engine = create_engine(database_url(env))
    try:
        with engine.connect() as conn:
            return int(conn.execute(text(
                "SELECT count(*) FROM outbox_jobs WHERE status = 'pending' "
                "AND next_attempt_at <= CURRENT_TIMESTAMP")).scalar_one())
    finally:
        engine.dispose()


def drain(server: servers.Server, env: dict[str, str]) -> dict[str, float]:
    """Wait until the worker has sent every due mail: the seconds it took and the hub's
    CPU meanwhile (s)."""
    cpu0 = servers.tree_cpu_seconds(server.process.pid)
    started = time.monotonic()
    while _due_mails(env) and time.monotonic() - started < DRAIN_TIMEOUT:
        time.sleep(0.1)
    return {"seconds": time.monotonic() - started,
            "cpu_s": servers.tree_cpu_seconds(server.process.pid) - cpu0}


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
    worker = not args.no_worker
    result: dict[str, Any] = {"backend": backend, "worker_in_process": worker, "rounds": []}
    with contextlib.ExitStack() as stack:
        factory = servers.BackendFactory(backend, workdir, stack)
        result["description"] = factory.description
        instance = factory.new_instance("intake")
        serving = servers.serve(instance, extra_args=() if worker else ("--no-worker",))
        with serving as server:
            seeded = data.seed_via_api(server.port, instance.api_key, args.customers, PREFIX)
            ids = _ids(instance.env)
            ids_file = workdir / f"{backend}-intake-ids.txt"
            ids_file.write_text("\n".join(ids) + "\n")
            print(f"  {backend}: {seeded:,} customers; server {server.base_url}"
                  f"{'' if worker else ' (no in-process worker)'}", file=sys.stderr)
            db_pid = factory.database_pid()

            def measure(script: str, settings: LoadSettings, extra: tuple[str, ...]
                        ) -> dict[str, Any]:
                if worker:
                    drain(server, instance.env)  # start with no mail left from before
                row = wrk_measure(tool, server, script, settings, seconds=args.duration,
                                  api_key=instance.api_key, extra=extra, run_dir=workdir,
                                  db_pid=db_pid)
                if worker:
                    # The mails this run queued, sent: part of what each request cost.
                    drained = row["drain"] = drain(server, instance.env)
                    n = max(1, row["requests"])
                    row["rps_with_mail"] = n / (row["duration_s"] + drained["seconds"])
                    row["cpu_ms_with_mail"] = (row["server_cpu_ms"]
                                               + drained["cpu_s"] * 1000 / n)
                return row

            for n in range(args.rounds):
                row: dict[str, Any] = {}
                for name, script in FIGURES:
                    extra = _extra(name, ids_file, args.customers)
                    if args.warmup > 0:
                        run_wrk(tool, server.base_url, script, many, duration=args.warmup,
                                args=extra, api_key=instance.api_key, log_dir=workdir)
                    single = measure(script, one, extra)
                    loaded = measure(script, many, extra)
                    row[name] = {"one_client": single, "eight": loaded}
                    mail = (f" | incl. mail: {loaded['rps_with_mail']:6.0f} req/s, hub CPU "
                            f"{loaded['cpu_ms_with_mail']:.2f} ms/req" if worker else "")
                    print(f"  round {n + 1} {name:20s} 1 client p50 {single['p50_ms']:6.2f} ms"
                          f" ({single['rps']:5.0f} req/s) | 8: {loaded['rps']:6.0f} req/s "
                          f"p50 {loaded['p50_ms']:6.1f} ms, hub CPU "
                          f"{loaded['server_cpu_ms']:.2f} ms/req, statuses "
                          f"{loaded['statuses']}{mail}", file=sys.stderr)
                result["rounds"].append(row)

    def median(name: str, part: str, key: str, fallback: str) -> float:
        # without the worker there is no mail to wait for: the run's own figure
        return float(statistics.median(r[name][part].get(key, r[name][part][fallback])
                                       for r in result["rounds"]))

    result["summary"] = {
        name: {"p50_one_ms": median(name, "one_client", "p50_ms", "p50_ms"),
               "rps_eight": median(name, "eight", "rps", "rps"),
               "cpu_ms": median(name, "eight", "server_cpu_ms", "server_cpu_ms"),
               "rps_eight_with_mail": median(name, "eight", "rps_with_mail", "rps"),
               "cpu_ms_with_mail": median(name, "eight", "cpu_ms_with_mail",
                                          "server_cpu_ms")}
        for name, _ in FIGURES}
    return result


def table(results: list[dict[str, Any]]) -> str:
    lines = ["| backend | figure | p50, 1 client | req/s, 8 connections | hub CPU ms/req | "
             "req/s vs consent write | incl. mail: req/s | incl. mail: hub CPU ms/req | "
             "incl. mail: vs consent write |", "|---|---|---|---|---|---|---|---|---|"]
    for res in results:
        s = res["summary"]
        base = s["consent write"]["rps_eight"] or 1.0
        base_mail = s["consent write"]["rps_eight_with_mail"] or 1.0
        label = res["backend"] + ("" if res["worker_in_process"] else " (no worker)")
        for name, _ in FIGURES:
            f = s[name]
            mail = (f"{f['rps_eight_with_mail']:,.0f} | {f['cpu_ms_with_mail']:.2f} | "
                    f"{f['rps_eight_with_mail'] / base_mail:.2f}x"
                    if res["worker_in_process"] else "- | - | -")
            lines.append(f"| {label} | {name} | {f['p50_one_ms']:.2f} ms | "
                         f"{f['rps_eight']:,.0f} | {f['cpu_ms']:.2f} | "
                         f"{f['rps_eight'] / base:.2f}x | {mail} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.dsar_intake", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backend", action="append", choices=("sqlite", "sqlite-full",
                                                           "postgres"))
    p.add_argument("--customers", type=int, default=2000)
    p.add_argument("--duration", type=float, default=5)
    p.add_argument("--warmup", type=float, default=2)
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--no-worker", action="store_true",
                   help="serve without the in-process worker (the mails stay queued)")
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

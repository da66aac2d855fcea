"""Servers side by side (issue 14): the same hub under granian and gunicorn, in one run.

    python -m bench.server_compare [--backend sqlite --backend postgres]
                                   [--customers 10000,1000000] [--no-readme]

For each backend and each customer count: one fresh instance, seeded once (customers and
their consent states written straight into the database, bench/consent_bench.py's
``seed``; plus ``--lookup-customers`` customers with encrypted fields and emails
seed<i>@example.com through `privacy-hub import`, for the lookup and the DSAR create),
then served by each server in turn with the same workers and threads: granian as
`privacy-hub serve` runs it (privacy_hub/server.py), gunicorn as it ran up to issue 14
(bench/gunicorn_server.py, gthread). Each server answers, after a warm-up per endpoint:

- ping: `GET /api/v1/ping` (no auth, no database; the baseline);
- check: `GET /api/v1/consent-check` for random seeded customers (wrk);
- batch: `POST /api/v1/consent-check` with ``--batch-size`` random seeded ids from
  ``--batch-clients`` client threads, in decisions per second;
- write: `POST /api/v1/customers/{id}/consents` (wrk), granted and withdrawn in turn;
- create: `POST /api/v1/customers` with a new email each time (wrk);
- lookup: `POST /api/v1/customers/lookup` by an imported email (wrk);
- DSAR create: `POST /api/v1/requests`, an unverified access request for an imported
  email, its verification mail queued in the same transaction (wrk).

With ``--rounds`` above 1 the servers take turns going first. Reported per endpoint and
backend: both servers side by side (median over rounds), the ratio granian/gunicorn, the
hub's CPU per request (server processes only, not the load generator nor PostgreSQL), and
DSAR create against the consent write of the same server. JSON to
bench/out/servers-<time>.json, the markdown tables to stdout and, unless ``--no-readme``,
into the "Issue 14: servers side by side" section of bench/README.md. Figures only.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import re
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import consent_bench, data, importing, report, servers
from bench.wrk import LoadSettings, ensure_wrk, run_wrk

OUT = Path(__file__).resolve().parent / "out"
README = Path(__file__).resolve().parent / "README.md"
SECTION = "## Issue 14: servers side by side"
BACKENDS = ("sqlite", "postgres")
SERVERS = servers.SERVERS  # granian first: the ratio is granian / gunicorn

#: endpoint key -> (label, unit of its rate)
ENDPOINTS: dict[str, tuple[str, str]] = {
    "ping": ("GET /api/v1/ping (baseline)", "req/s"),
    "check": ("GET /api/v1/consent-check (single)", "req/s"),
    "batch": ("POST /api/v1/consent-check (batch)", "decisions/s"),
    "write": ("POST /api/v1/customers/{id}/consents (write)", "req/s"),
    "create": ("POST /api/v1/customers (create)", "req/s"),
    "lookup": ("POST /api/v1/customers/lookup (email)", "req/s"),
    "dsar_create": ("POST /api/v1/requests (DSAR create)", "req/s"),
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.server_compare", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backend", action="append", choices=(*BACKENDS, "all"),
                   help="repeatable; default: sqlite and postgres")
    p.add_argument("--customers", default="10000",
                   help="comma-separated customer counts, one instance each (e.g. 10000,1000000)")
    p.add_argument("--lookup-customers", type=int, default=2000,
                   help="customers imported with emails, for lookup and DSAR create")
    p.add_argument("--duration", type=float, default=3, help="seconds per measured run")
    p.add_argument("--warmup", type=float, default=1, help="seconds of warm-up before each")
    p.add_argument("--rounds", type=int, default=1, help="rounds (medians are reported)")
    p.add_argument("--threads", type=int, default=2, help="wrk threads")
    p.add_argument("--connections", type=int, default=8, help="wrk connections")
    p.add_argument("--workers", type=int, default=2, help="server worker processes")
    p.add_argument("--server-threads", type=int, default=4, help="threads per worker")
    p.add_argument("--batch-size", type=int, default=10_000, help="ids per batch check")
    p.add_argument("--batch-clients", type=int, default=4, help="concurrent batch clients")
    p.add_argument("--ids-file-size", type=int, default=100_000,
                   help="random seeded ids the wrk scripts pick from")
    p.add_argument("--no-readme", action="store_true", help="do not update bench/README.md")
    p.add_argument("--keep", action="store_true", help="keep the temporary instances")
    args = p.parse_args(argv)
    chosen = args.backend or list(BACKENDS)
    args.backends = list(BACKENDS) if "all" in chosen else list(dict.fromkeys(chosen))
    args.counts = [int(c.replace("_", "")) for c in args.customers.split(",") if c.strip()]
    return args


# --------------------------------------------------------------------------- measuring


def _with_cpu(server: servers.Server, db_pid: int | None, fn: Callable[[], dict[str, Any]]
              ) -> dict[str, Any]:
    """Run ``fn()`` (a load run) and add the hub's (and PostgreSQL's) CPU per request."""
    cpu0 = servers.tree_cpu_seconds(server.process.pid)
    db0 = servers.tree_cpu_seconds(db_pid) if db_pid else None
    row = fn()
    n = max(1, int(row["requests"]))
    row["server_cpu_ms"] = (servers.tree_cpu_seconds(server.process.pid) - cpu0) * 1000 / n
    if db0 is not None and db_pid:
        row["db_cpu_ms"] = (servers.tree_cpu_seconds(db_pid) - db0) * 1000 / n
    return row


def measure_server(tool: str, server: servers.Server, args: argparse.Namespace,
                   api_key: str, ids_file: Path, ids: list[str], db_pid: int | None,
                   run_dir: Path, tag: str) -> dict[str, dict[str, Any]]:
    """Every endpoint once on this server, each after its own warm-up."""
    settings = LoadSettings(threads=args.threads, connections=args.connections,
                            duration=args.duration, warmup=args.warmup)
    purpose = consent_bench.CONSENT_PURPOSE
    wrk_args: dict[str, tuple[str, tuple[str, ...]]] = {
        "ping": ("ping", ()),
        "check": ("consent_check", (str(ids_file), purpose)),
        "write": ("consent_write", (str(ids_file), purpose)),
        "create": ("create", (tag,)),
        "lookup": ("lookup", (str(args.lookup_customers),)),
        "dsar_create": ("requests_create", (str(args.lookup_customers),)),
    }
    out: dict[str, dict[str, Any]] = {}
    for name in ENDPOINTS:
        if name == "batch":
            def load(seconds: float, seed: int) -> dict[str, Any]:
                return consent_bench.batch_load(
                    server.port, api_key, ids, clients=args.batch_clients, seconds=seconds,
                    size=min(args.batch_size, len(ids)), rng_seed=seed)
        else:
            script, extra = wrk_args[name]

            def load(seconds: float, seed: int, script: str = script,
                     extra: tuple[str, ...] = extra) -> dict[str, Any]:
                if script == "create":  # a new email each run: every create is a 201
                    extra = (f"{extra[0]}-{seed}",)
                res = run_wrk(tool, server.base_url, script, settings, duration=seconds,
                              args=extra, api_key=api_key, log_dir=run_dir)
                row = res.as_dict()
                row["ok_fraction"] = res.ok_fraction
                return row
        if args.warmup > 0:
            load(args.warmup, 1)
        row = _with_cpu(server, db_pid, lambda load=load: load(args.duration, 2))
        row["rate"] = row["decisions_per_s"] if name == "batch" else row["rps"]
        out[name] = row
        print(f"    {name:12s} {row['rate']:10,.0f} {ENDPOINTS[name][1]:11s} "
              f"p50 {row['p50_ms']:7.1f} ms  p99 {row['p99_ms']:7.1f} ms  "
              f"hub CPU {row['server_cpu_ms']:6.2f} ms/req  statuses {row['statuses']}",
              file=sys.stderr)
    return out


def summarise(rounds: dict[str, list[dict[str, dict[str, Any]]]]) -> dict[str, Any]:
    """Medians over the rounds, per server and endpoint; the ratios between them."""
    med = statistics.median
    per: dict[str, dict[str, dict[str, Any]]] = {}
    for srv, runs in rounds.items():
        per[srv] = {}
        for name in ENDPOINTS:
            rows = [r[name] for r in runs]
            per[srv][name] = {
                "rate": med(r["rate"] for r in rows),
                "p50_ms": med(r["p50_ms"] for r in rows),
                "p99_ms": med(r["p99_ms"] for r in rows),
                "server_cpu_ms": med(r["server_cpu_ms"] for r in rows),
                "statuses": rows[-1]["statuses"],
            }
    a, b = SERVERS
    ratios = {name: {"rate": _ratio(per[a][name]["rate"], per[b][name]["rate"]),
                     "server_cpu_ms": _ratio(per[a][name]["server_cpu_ms"],
                                             per[b][name]["server_cpu_ms"])}
              for name in ENDPOINTS if a in per and b in per}
    dsar_vs_write = {srv: _ratio(per[srv]["dsar_create"]["rate"], per[srv]["write"]["rate"])
                     for srv in per}
    return {"servers": per, "ratio": ratios, "dsar_create_vs_write": dsar_vs_write}


def _ratio(x: float, y: float) -> float | None:
    return x / y if y else None


def bench_instance(factory: servers.BackendFactory, count: int, args: argparse.Namespace,
                   tool: str, workdir: Path, run_dir: Path) -> dict[str, Any]:
    instance = factory.new_instance(f"servers-{count}")
    seeded = consent_bench.seed(instance.env, count)
    entry: dict[str, Any] = {"seed": seeded.summary()}
    print(f"  {count:,} customers seeded in {seeded.seconds:.0f} s", file=sys.stderr)
    ids_file = workdir / f"{factory.backend}-{count}-ids.txt"
    sample = random.Random(3).sample(seeded.ids, min(args.ids_file_size, len(seeded.ids)))
    ids_file.write_text("\n".join(sample) + "\n")
    csv_path = workdir / f"lookup-{args.lookup_customers}.csv"
    if not csv_path.exists():
        data.write_csv(csv_path, args.lookup_customers, "seed")
    imported = importing.run_import(instance, csv_path, args.lookup_customers)
    entry["imported"] = imported.created
    print(f"  {imported.created:,} customers imported (lookup, DSAR create)", file=sys.stderr)
    db_pid = factory.database_pid()
    rounds: dict[str, list[dict[str, dict[str, Any]]]] = {s: [] for s in SERVERS}
    for n in range(args.rounds):
        order = SERVERS if n % 2 == 0 else tuple(reversed(SERVERS))
        for srv in order:
            with servers.serve(instance, workers=args.workers, threads=args.server_threads,
                               server=srv) as server:
                print(f"  round {n + 1} {srv} {server.base_url}, workers "
                      f"{server.worker_pids()}", file=sys.stderr)
                rounds[srv].append(measure_server(
                    tool, server, args, instance.api_key, ids_file, seeded.ids, db_pid,
                    run_dir, f"{srv}{n}-{int(time.time())}"))
    entry["rounds"] = rounds
    entry["summary"] = summarise(rounds)
    return entry


# --------------------------------------------------------------------------- reporting


def _fmt_rate(x: float) -> str:
    return f"{x:,.0f}"


def _fmt_ratio(x: float | None) -> str:
    return "" if x is None else f"{x:.2f}"


def markdown(results: dict[str, Any]) -> str:
    """One table per backend and customer count: both servers, their ratio, CPU, p50."""
    a, b = SERVERS
    m, st = results["machine"], results["settings"]
    lines = [
        f"Run {results['date']} on {m['cores']} cores ({m['cpu']}), Python {m['python']}, "
        f"{m['wrk']}; commit {results['code']['commit']}"
        + (" with uncommitted changes outside bench/" if results["code"]["uncommitted"] else "")
        + f". wrk {st['threads']} threads, {st['connections']} connections, {st['warmup']:g} s "
        f"warm-up then {st['duration']:g} s per endpoint, {st['rounds']} round(s) (median); "
        f"batch: {st['batch_clients']} client threads x {st['batch_size']:,} ids; both servers "
        f"`--workers {st['workers']} --threads {st['server_threads']}` on the same instance.",
    ]
    head = ["endpoint", f"{a}", f"{b}", f"{a}/{b}", f"hub CPU ms/req {a}",
            f"hub CPU ms/req {b}", f"p50 ms {a}", f"p50 ms {b}"]
    for key, entry in results["runs"].items():
        lines += ["", f"#### {key}", ""]
        if "error" in entry:
            lines.append(f"failed: {entry['error']}")
            continue
        s = entry["summary"]
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for name, (label, unit) in ENDPOINTS.items():
            x, y = s["servers"][a][name], s["servers"][b][name]
            lines.append("| " + " | ".join([
                label, f"{_fmt_rate(x['rate'])} {unit}", f"{_fmt_rate(y['rate'])} {unit}",
                _fmt_ratio(s["ratio"][name]["rate"]), f"{x['server_cpu_ms']:.2f}",
                f"{y['server_cpu_ms']:.2f}", f"{x['p50_ms']:.1f}", f"{y['p50_ms']:.1f}"]) + " |")
        dw = s["dsar_create_vs_write"]
        lines += ["", "DSAR create / consent write (req/s, same server, same run): "
                  + ", ".join(f"{srv} {_fmt_ratio(dw[srv])}" for srv in SERVERS)]
    return "\n".join(lines)


def update_readme(text_block: str, path: Path = README) -> bool:
    """Replace the block between this tool's markers, adding the section if it is missing."""
    start, end = "<!-- servers:results -->", "<!-- /servers:results -->"
    block = f"{start}\n{text_block}\n{end}"
    text = path.read_text()
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _m: block, text)
    else:
        text = text.rstrip("\n") + f"\n\n{SECTION}\n\n`python -m bench.server_compare`.\n\n{block}\n"
    path.write_text(text)
    return True


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    tool = ensure_wrk()
    if tool is None:
        print("wrk is not installed (apt-get install wrk)", file=sys.stderr)
        return 2
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    run_dir = OUT / f"servers-{stamp}"
    run_dir.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": report.machine(), "code": report.code_version(),
        "settings": {k: getattr(args, k) for k in (
            "counts", "lookup_customers", "duration", "warmup", "rounds", "threads",
            "connections", "workers", "server_threads", "batch_size", "batch_clients")},
        "servers": list(SERVERS),
        "runs": {},
    }
    workdir = Path(tempfile.mkdtemp(prefix="privacy-hub-servers-bench-"))
    failed = False
    try:
        for backend in args.backends:
            with contextlib.ExitStack() as stack:
                factory = servers.BackendFactory(backend, workdir, stack)
                for count in args.counts:
                    key = f"{backend}, {count:,} customers"
                    print(f"== {key} ({factory.description})", file=sys.stderr)
                    try:
                        entry = bench_instance(factory, count, args, tool, workdir, run_dir)
                    except Exception as exc:
                        failed = True
                        entry = {"error": f"{type(exc).__name__}: {exc}"}
                        print(f"  failed: {entry['error']}", file=sys.stderr)
                    entry["backend"], entry["description"] = backend, factory.description
                    results["runs"][key] = entry
    finally:
        if args.keep:
            print(f"instances kept in {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    out = OUT / f"servers-{stamp}.json"
    out.write_text(json.dumps(results, indent=2, default=str))
    table = markdown(results)
    print(table)
    print(f"\nJSON: {out}")
    if not args.no_readme and not failed:
        update_readme(table)
        print(f"bench/README.md: section {SECTION!r} updated")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

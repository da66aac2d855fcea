"""Run the hub's benchmarks: `python -m bench.run_all [--backend sqlite --backend postgres]`.

For each backend: a fresh instance (`privacy-hub init --demo`), seeded with customers by
`privacy-hub import`, served by `privacy-hub serve` on 127.0.0.1; then, per round, wrk
runs ping, create, ping, lookup, ping, all with the same settings, each endpoint after
its own warm-up. Each ratio is to the mean of the pings just before and after. Then
`privacy-hub import` of a generated CSV into another fresh instance. With ``--servers``,
then bench/server_compare.py: granian and gunicorn side by side.

The table goes to stdout, the JSON to bench/out/, and the figures to bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import data, importing, profiling, report, servers
from bench.wrk import LoadResult, LoadSettings, ensure_wrk, run_wrk

OUT = Path(__file__).resolve().parent / "out"
ENDPOINTS = ("ping", "create", "lookup")
SEED_PREFIX = "seed"  # bench/scripts/lookup.lua asks for seed<i>@example.com


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.run_all", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backend", action="append", choices=(*servers.BACKENDS, "all"),
                   help="repeatable; default: sqlite and postgres ('all' adds sqlite-full)")
    p.add_argument("--duration", type=float, default=10, help="seconds per measured run")
    p.add_argument("--warmup", type=float, default=3, help="seconds of warm-up before each")
    p.add_argument("--rounds", type=int, default=2,
                   help="rounds of ping, create, ping, lookup, ping (medians are reported)")
    p.add_argument("--threads", type=int, default=2, help="wrk threads")
    p.add_argument("--connections", type=int, default=8, help="wrk connections")
    p.add_argument("--workers", type=int, default=2, help="server worker processes")
    p.add_argument("--server-threads", type=int, default=4, help="threads per worker")
    p.add_argument("--seed", type=int, default=10_000, help="customers to seed for lookups")
    p.add_argument("--import-rows", type=int, default=100_000, help="0 skips the import")
    p.add_argument("--import-batch-size", type=int, default=None)
    p.add_argument("--skip-http", action="store_true", help="only the import benchmark")
    p.add_argument("--servers", metavar="CUSTOMERS",
                   help="afterwards, granian and gunicorn side by side (bench/server_compare.py) "
                        "on the same backends, at these customer counts (e.g. 10000,1000000)")
    p.add_argument("--py-spy", action="store_true",
                   help="after the measured rounds, profile the workers during an extra "
                        "create and lookup run (not reported); stacks go to bench/out/")
    p.add_argument("--no-readme", action="store_true", help="do not update bench/README.md")
    p.add_argument("--keep", action="store_true", help="keep the temporary instances")
    p.add_argument("--readme-from", type=Path, metavar="RESULTS_JSON",
                   help="only rewrite bench/README.md from a results.json of an earlier run")
    args = p.parse_args(argv)
    chosen = args.backend or ["sqlite", "postgres"]
    args.backends = list(servers.BACKENDS) if "all" in chosen else list(dict.fromkeys(chosen))
    return args


def load(tool: str | None, server: servers.Server, endpoint: str, settings: LoadSettings, *,
         duration: float, api_key: str, extra: tuple[str, ...], log_dir: Path) -> LoadResult:
    if tool is not None:
        return run_wrk(tool, server.base_url, endpoint, settings, duration=duration,
                       args=extra, api_key=api_key, log_dir=log_dir)
    from bench.pyload import run_python

    return run_python(server.base_url, endpoint, settings, duration=duration, args=extra,
                      api_key=api_key)


def measure(tool: str | None, server: servers.Server, ep: str, settings: LoadSettings,
            duration: float, api_key: str, extra: tuple[str, ...], run_dir: Path,
            db_pid: int | None) -> dict[str, Any]:
    """One measured run, with the hub's (and PostgreSQL's) CPU time per request."""
    cpu0 = servers.tree_cpu_seconds(server.process.pid)
    db0 = servers.tree_cpu_seconds(db_pid) if db_pid else None
    res = load(tool, server, ep, settings, duration=duration, api_key=api_key, extra=extra,
               log_dir=run_dir)
    cpu1 = servers.tree_cpu_seconds(server.process.pid)
    db1 = servers.tree_cpu_seconds(db_pid) if db_pid else None
    row = res.as_dict()
    row["ok_fraction"] = res.ok_fraction
    row["server_cpu_ms"] = (cpu1 - cpu0) * 1000 / max(1, res.requests)
    row["db_cpu_ms"] = ((db1 - db0) * 1000 / max(1, res.requests)
                        if db0 is not None and db1 is not None else None)
    return row


def summarise(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians over the rounds (for ping: over all its runs)."""
    med = statistics.median
    out: dict[str, Any] = {}
    for ep in ENDPOINTS:
        runs = ([p for r in rounds for p in r["ping_runs"]] if ep == "ping"
                else [r[ep] for r in rounds])
        out[ep] = {
            "rps": med(r["rps"] for r in runs),
            "p50_ms": med(r["p50_ms"] for r in runs),
            "p99_ms": med(r["p99_ms"] for r in runs),
            "ratio": 1.0 if ep == "ping" else med(r["rps"] / r["baseline_rps"] for r in runs),
            "baseline_rps": None if ep == "ping" else med(r["baseline_rps"] for r in runs),
            "ok_fraction": min(r["ok_fraction"] for r in runs),
            "server_cpu_ms": med(r["server_cpu_ms"] for r in runs),
            "db_cpu_ms": (med(r["db_cpu_ms"] for r in runs)
                          if all(r.get("db_cpu_ms") is not None for r in runs) else None),
        }
    return out


def bench_http(factory: servers.BackendFactory, args: argparse.Namespace, tool: str | None,
               workdir: Path, run_dir: Path, result: dict[str, Any]) -> None:
    instance = factory.new_instance("http")
    settings = LoadSettings(threads=args.threads, connections=args.connections,
                            duration=args.duration, warmup=args.warmup)
    seed_csv = workdir / f"seed-{args.seed}.csv"
    if not seed_csv.exists():
        data.write_csv(seed_csv, args.seed, SEED_PREFIX)
    seeded, method = 0, "privacy-hub import"
    try:
        out = importing.run_import(instance, seed_csv, args.seed)
        seeded = out.created
    except Exception as exc:  # the importer may not exist yet: seed over the API instead
        print(f"  seeding by import failed ({type(exc).__name__}); seeding over the API",
              file=sys.stderr)
        method = "API"
    with servers.serve(instance, workers=args.workers, threads=args.server_threads) as server:
        if method == "API":
            seeded = data.seed_via_api(server.port, instance.api_key, args.seed, SEED_PREFIX)
        result["seeded"], result["seed_method"] = seeded, method
        print(f"  {seeded:,} customers seeded ({method}); server {server.base_url}, "
              f"workers {server.worker_pids()}", file=sys.stderr)
        db_pid = factory.database_pid()
        extras = {"ping": (), "create": (), "lookup": (str(args.seed),)}
        rounds: list[dict[str, Any]] = []
        for n in range(args.rounds):
            # ping, create, ping, lookup, ping: each endpoint's baseline is the mean of the
            # pings just before and after it, so a noisy neighbour hits both alike.
            this: dict[str, Any] = {"ping_runs": []}
            for step, ep in enumerate(("ping", "create", "ping", "lookup", "ping")):
                tag = f"r{n}s{step}-{int(time.time())}"
                if ep != "ping" or step == 0:
                    warm = (f"w{tag}",) if ep == "create" else extras[ep]
                    if args.warmup > 0:
                        load(tool, server, ep, settings, duration=args.warmup,
                             api_key=instance.api_key, extra=warm, log_dir=run_dir)
                extra = (f"m{tag}",) if ep == "create" else extras[ep]
                row = measure(tool, server, ep, settings, args.duration, instance.api_key,
                              extra, run_dir, db_pid)
                if ep == "ping":
                    this["ping_runs"].append(row)
                else:
                    this[ep] = row
                print(f"  round {n + 1} {ep:7s} {row['rps']:8,.0f} req/s  "
                      f"p50 {row['p50_ms']:6.1f} ms  p99 {row['p99_ms']:7.1f} ms  "
                      f"statuses {row['statuses']}  hub CPU {row['server_cpu_ms']:.2f} ms/req",
                      file=sys.stderr)
            pings = this["ping_runs"]
            this["create"]["baseline_rps"] = (pings[0]["rps"] + pings[1]["rps"]) / 2
            this["lookup"]["baseline_rps"] = (pings[1]["rps"] + pings[2]["rps"]) / 2
            rounds.append(this)
        result["rounds"] = rounds
        result["summary"] = summarise(rounds)
        if args.py_spy:
            profile(server, factory.backend, args, settings, tool, instance, run_dir, result)


def profile(server: servers.Server, backend: str, args: argparse.Namespace,
            settings: LoadSettings, tool: str | None, instance: servers.Instance,
            run_dir: Path, result: dict[str, Any]) -> None:
    summaries: dict[str, str] = {}
    for ep in ("create", "lookup", "ping"):
        for mode in ("wall", "cpu"):
            extra = (f"p{mode}{int(time.time())}",) if ep == "create" else (
                (str(args.seed),) if ep == "lookup" else ())
            label = f"{backend}-{ep}-{mode}"
            procs = profiling.start(server.worker_pids(), args.duration, run_dir, label,
                                    idle=mode == "wall")
            load(tool, server, ep, settings, duration=args.duration, api_key=instance.api_key,
                 extra=extra, log_dir=run_dir)
            paths = profiling.finish(procs)
            text = "\n".join(f"{share:6.1%}  {name}"
                             for name, share in profiling.categorise(paths))
            text += "\n\n" + profiling.summarise(paths)
            out = run_dir / f"{label}-profile.txt"
            out.write_text(text)
            summaries[f"{ep}-{mode}"] = str(out)
            print(f"  profile {label}: {out}", file=sys.stderr)
    result["profiles"] = summaries


def bench_import(factory: servers.BackendFactory, args: argparse.Namespace, workdir: Path,
                 result: dict[str, Any]) -> None:
    csv_path = workdir / f"import-{args.import_rows}.csv"
    if not csv_path.exists():
        data.write_csv(csv_path, args.import_rows, "imp", seed=2)
    one = workdir / "import-startup.csv"
    if not one.exists():
        data.write_csv(one, 1, "startup", seed=3)
    instance = factory.new_instance("import")
    res = importing.run_import(instance, csv_path, args.import_rows,
                               batch_size=args.import_batch_size, startup_csv=one)
    result["import"] = res.as_dict()
    print(f"  import {res.created:,} new in {res.seconds:.1f} s = {res.per_second:,.0f}/s "
          f"(rejected {res.rejected}, start-up {res.startup_seconds:.1f} s)", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.readme_from:
        results = json.loads(args.readme_from.read_text())
        print(report.text_table(report.rows(results)))
        done = report.update_readme(results)
        print(f"bench/README.md updated for: {', '.join(done) or 'none'}")
        return 0
    if args.py_spy and profiling.py_spy() is None:
        print("--py-spy: py-spy is not installed (`.venv/bin/pip install py-spy`)", file=sys.stderr)
        return 2
    tool = None if args.skip_http else ensure_wrk()
    notes: list[str] = []
    if tool is None and not args.skip_http:
        notes.append("wrk was not available: figures from the Python load generator "
                     "(bench/pyload.py), which costs far more client CPU")
        print("wrk not available; using the Python load generator", file=sys.stderr)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    run_dir = OUT / stamp
    run_dir.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": report.machine(),
        "code": report.code_version(),
        "settings": {k: getattr(args, k) for k in (
            "duration", "warmup", "rounds", "threads", "connections", "workers",
            "server_threads", "seed", "import_rows", "import_batch_size")},
        "tool": tool and "wrk",
        "backends": {},
    }
    workdir = Path(tempfile.mkdtemp(prefix="privacy-hub-bench-"))
    failed = False
    try:
        for backend in args.backends:
            print(f"== {backend}", file=sys.stderr)
            entry: dict[str, Any] = {"notes": list(notes)}
            with contextlib.ExitStack() as stack:
                try:
                    factory = servers.BackendFactory(backend, workdir, stack)
                    entry["description"] = factory.description
                    results["backends"][backend] = entry
                    if not args.skip_http:
                        bench_http(factory, args, tool, workdir, run_dir, entry)
                    if args.import_rows > 0:
                        bench_import(factory, args, workdir, entry)
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
    (OUT / "latest.json").write_text(json.dumps(results, indent=2, default=str))
    table = report.rows(results)
    if table:
        print()
        print(report.text_table(table))
    print(f"\nJSON: {run_dir / 'results.json'}")
    ok = {b: d for b, d in results["backends"].items() if "error" not in d}
    partial = args.skip_http or args.import_rows <= 0
    if partial and not args.no_readme:
        print("bench/README.md not updated: it holds complete runs only (HTTP and import)")
    elif not args.no_readme and ok:
        updated = report.update_readme({**results, "backends": ok})
        print(f"bench/README.md updated for: {', '.join(updated) or 'none (no markers)'}")
    if args.servers:
        from bench import server_compare

        compare = ["--customers", args.servers, "--duration", str(args.duration),
                   "--warmup", str(args.warmup), "--threads", str(args.threads),
                   "--connections", str(args.connections), "--workers", str(args.workers),
                   "--server-threads", str(args.server_threads)]
        compare += [a for b in args.backends if b in server_compare.BACKENDS
                    for a in ("--backend", b)]
        if args.no_readme:
            compare.append("--no-readme")
        failed = server_compare.main(compare) != 0 or failed
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

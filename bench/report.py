"""The results table: on stdout, and in bench/README.md between per-backend markers."""

from __future__ import annotations

import platform
import re
import subprocess
from pathlib import Path
from typing import Any

README = Path(__file__).resolve().parent / "README.md"

#: minimum ratio of an endpoint's req/s to /api/v1/ping's in the same run, and import rate
TARGETS: dict[str, float] = {"create": 0.4, "lookup": 0.6, "import": 5000.0}
ENDPOINT_LABEL = {"ping": "GET /api/v1/ping (baseline)",
                  "create": "POST /api/v1/customers (create)",
                  "lookup": "POST /api/v1/customers/lookup (email)"}


def machine() -> dict[str, Any]:
    import os

    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    wrk = ""
    try:
        out = subprocess.run(["wrk", "-v"], capture_output=True, text=True, check=False)
        first = (out.stdout or out.stderr).split("\n", 1)[0]
        match = re.search(r"(\d+\.\d+\.\d+)", first)
        wrk = f"wrk {match.group(1)}" if match else first.strip()
    except OSError:
        pass
    return {"cores": os.cpu_count(), "cpu": model, "python": platform.python_version(),
            "system": f"{platform.system()} {platform.release()}", "wrk": wrk}


def code_version() -> dict[str, Any]:
    """The commit measured, and whether files outside bench/ had uncommitted changes."""
    repo = README.parent.parent

    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True,
                                  check=False, timeout=30).stdout
        except OSError:
            return ""

    # Porcelain lines are "XY path": keep the leading status columns intact.
    changed = [ln[3:] for ln in git("status", "--porcelain").splitlines()
               if ln[3:] and not ln[3:].startswith("bench/")]
    return {"commit": git("rev-parse", "--short", "HEAD").strip(), "uncommitted": changed}


def rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per backend and figure, from the JSON results of a run."""
    out = []
    for backend, data in results["backends"].items():
        for endpoint, s in data.get("summary", {}).items():
            target = TARGETS.get(endpoint)
            out.append({
                "backend": backend, "figure": ENDPOINT_LABEL[endpoint],
                "rate": f"{s['rps']:,.0f} req/s", "p50": f"{s['p50_ms']:.1f} ms",
                "p99": f"{s['p99_ms']:.1f} ms",
                "ratio": "1.00" if endpoint == "ping" else f"{s['ratio']:.2f}",
                "target": f">= {target:.1f}x ping" if target else "",
                "met": "" if target is None else ("yes" if s["ratio"] >= target else "NO"),
                "cpu": f"{s['server_cpu_ms']:.2f}" if s.get("server_cpu_ms") is not None else "",
                "ok": f"{s['ok_fraction']:.1%}",
            })
        imp = data.get("import")
        if imp:
            out.append({
                "backend": backend, "figure": f"privacy-hub import of {imp['rows']:,} customers",
                "rate": f"{imp['per_second']:,.0f} customers/s",
                "p50": "", "p99": "", "ratio": "",
                "target": f">= {TARGETS['import']:,.0f}/s",
                "met": "yes" if imp["per_second"] >= TARGETS["import"] else "NO",
                "cpu": "", "ok": f"{imp['created']:,} new in {imp['seconds']:.1f} s "
                                 f"(start-up {imp['startup_seconds']:.1f} s)",
            })
    return out


COLUMNS = (("backend", "backend"), ("figure", "figure"), ("rate", "throughput"),
           ("p50", "p50"), ("p99", "p99"), ("ratio", "ratio to ping"), ("target", "target"),
           ("met", "met?"), ("cpu", "hub CPU ms/req"), ("ok", "as expected"))


def text_table(table: list[dict[str, Any]]) -> str:
    widths = {k: max(len(h), *(len(str(r[k])) for r in table)) for k, h in COLUMNS}
    line = "  ".join(h.ljust(widths[k]) for k, h in COLUMNS)
    body = ["  ".join(str(r[k]).ljust(widths[k]) for k, _ in COLUMNS) for r in table]
    return "\n".join([line, "-" * len(line), *body])


def markdown_block(results: dict[str, Any], backend: str) -> str:
    data = results["backends"][backend]
    m = results["machine"]
    s = results["settings"]
    table = [r for r in rows(results) if r["backend"] == backend]
    code = results.get("code", {})
    date = results["date"][:10]
    mach = f"{m['cores']} cores"
    head = ["date", "machine", "backend", "figure", "throughput", "p50", "p99", "ratio to ping",
            "target", "met?", "hub CPU ms/req"]
    lines = [
        f"### {backend}",
        "",
        f"{data['description']}. Run {results['date']} on {m['cores']} cores ({m['cpu']}), "
        f"Python {m['python']}, {m['wrk'] or 'python load generator'}; "
        f"{s['threads']} load threads, {s['connections']} connections, "
        f"{s['warmup']:g} s warm-up then {s['duration']:g} s per endpoint, "
        f"{s['rounds']} round(s) (median); server `--workers {s['workers']} --threads "
        f"{s['server_threads']}`; {data.get('seeded', 0):,} customers seeded "
        f"({data.get('seed_method', '?')}); code at commit {code.get('commit', '?')}"
        + (f" with uncommitted changes to {len(code['uncommitted'])} files outside bench/"
           if code.get("uncommitted") else "") + ".",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for r in table:
        cells = [date, mach, backend, r["figure"], r["rate"], r["p50"], r["p99"], r["ratio"],
                 r["target"], r["met"], r["cpu"]]
        lines.append("| " + " | ".join(c or "" for c in cells) + " |")
    notes = data.get("notes") or []
    if notes:
        lines += ["", *[f"- {n}" for n in notes]]
    return "\n".join(lines)


def update_readme(results: dict[str, Any], path: Path = README) -> list[str]:
    """Replace each measured backend's block between its markers; returns the backends."""
    text = path.read_text()
    done = []
    for backend in results["backends"]:
        start, end = f"<!-- results:{backend} -->", f"<!-- /results:{backend} -->"
        pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.S)
        if not pattern.search(text):
            continue
        block = f"{start}\n{markdown_block(results, backend)}\n{end}"
        text = pattern.sub(lambda _m, b=block: b, text)
        done.append(backend)
    path.write_text(text)
    return done

"""Optional server-side profiles with py-spy (`run_all --py-spy`), taken in extra,
unreported load runs so the published figures are never measured under a profiler.

Two runs per endpoint: "wall" (`--idle`: where the request threads spend their time,
waiting for locks included) and "cpu" (on-CPU samples only). Writes collapsed stacks
(`py-spy record --format raw`) per worker, a breakdown by CATEGORIES and the functions
with the most samples, self and inclusive.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path


def py_spy() -> str | None:
    local = Path(sys.executable).parent / "py-spy"
    return str(local) if local.exists() else shutil.which("py-spy")


def start(pids: list[int], seconds: float, out_dir: Path, label: str, *, idle: bool
          ) -> list[tuple[subprocess.Popen[bytes], Path]]:
    """py-spy on each pid; ``idle`` keeps waiting threads (wall time), else on-CPU only."""
    exe = py_spy()
    if exe is None:
        raise RuntimeError("py-spy is not installed: `.venv/bin/pip install py-spy`")
    procs = []
    for pid in pids:
        path = out_dir / f"{label}-{pid}.txt"
        cmd = [exe, "record", "--pid", str(pid), "--duration", str(max(1, round(seconds))),
               "--rate", "200", "--format", "raw", "--threads", "-o", str(path)]
        if idle:
            cmd.insert(-2, "--idle")
        procs.append((subprocess.Popen(cmd, stdout=subprocess.DEVNULL,
                                       stderr=subprocess.DEVNULL), path))
    return procs


def finish(procs: list[tuple[subprocess.Popen[bytes], Path]], timeout: float = 60) -> list[Path]:
    paths = []
    for proc, path in procs:
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if path.exists():
            paths.append(path)
    return paths


def _frames(stack: str) -> list[str]:
    # "thread (0x..);func (file.py:12);func2 (file.py:40) 17" -> frames without line numbers
    frames = []
    for frame in stack.split(";"):
        name, _, where = frame.partition(" (")
        file = where.rsplit(":", 1)[0] if where else ""
        frames.append(f"{name} ({_short(file)})" if file else name)
    return frames


def _short(file: str) -> str:
    for marker in ("site-packages/", "/work/main/", "lib/python3"):
        if marker in file:
            return file.split(marker, 1)[1]
    return file


IDLE = ("_worker (concurrent/futures/thread.py)", "wait (threading.py)", "select (selectors.py)", "_recv_into", "accept (socket.py)",
        "sleep (gunicorn/workers", "poll (selectors.py)", "wait_for_tstate_lock")


def summarise(paths: list[Path], top: int = 25) -> str:
    """Top functions by self and inclusive samples over all busy (non-idle) stacks."""
    own: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    total = idle = 0
    for path in paths:
        for line in path.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            if not count.isdigit():
                continue
            n = int(count)
            frames = _frames(stack)[1:]  # drop the thread label
            if not frames:
                continue
            total += n
            if any(m in frames[-1] for m in IDLE):
                idle += n
                continue
            own[frames[-1]] += n
            for f in set(frames):
                incl[f] += n
    busy = max(1, total - idle)
    lines = [f"samples: {total}, idle/waiting: {idle} ({idle / max(1, total):.0%}), busy: {busy}",
             "", "self (busy samples):"]
    lines += [f"  {n / busy:6.1%}  {name}" for name, n in own.most_common(top)]
    lines += ["", "inclusive (busy samples):"]
    lines += [f"  {n / busy:6.1%}  {name}" for name, n in incl.most_common(top * 2)]
    return "\n".join(lines)


#: Where a request's time goes, by the first of these found anywhere in a sample's stack
#: (so the order is from the most specific to the most general).
CATEGORIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("SQLite BEGIN IMMEDIATE: waiting for the write lock (privacy_hub/db.py _on_begin)",
     ("_on_begin (privacy_hub/db.py)",)),
    ("audit head lock: SELECT ... FOR UPDATE incl. waiting (audit/head.py lock)",
     ("lock (audit/head.py)",)),
    ("connection checkout (pool, pre-ping, connect)", ("Pool.connect (", "_do_ping_w_event")),
    ("audit chain at commit, after the lock (audit/head.py append)", ("append (audit/head.py)",)),
    ("DB commit (incl. fsync)", ("do_commit (",)),
    ("API key check (SystemRegistry.authenticate)", ("SystemRegistry.authenticate",)),
    ("customer data keys (KeyRing.data_keys / new_data_key(s))",
     ("KeyRing.data_key", "KeyRing.new_data_key")),
    ("blind-index candidates (Vault._candidates)", ("Vault._candidates",)),
    ("vault create/update (seal, insert, flush)", ("Vault._create", "Vault._update",
                                                   "Vault.create_many")),
    ("ORM flush", ("Session.flush",)),
    ("request body parsing (webargs/marshmallow)", ("Parser.parse (", "Schema.load")),
    ("response serialisation (marshmallow dump, jsonify)", ("Schema.dump", "ResponseMixin",
                                                           "jsonify")),
    ("other view code", ("MethodView.dispatch_request",)),
    ("session close / rollback", ("Session.close", "teardown")),
    ("Flask/Werkzeug request handling", ("Flask.wsgi_app",)),
    ("gunicorn (HTTP parsing, sockets, access log)", ("ThreadWorker", "SyncWorker")),
    ("granian (WSGI glue, access log; its HTTP is Rust, unseen)", ("(granian/",)),
)


def categorise(paths: list[Path]) -> list[tuple[str, float]]:
    """Share of busy samples per category (CATEGORIES), largest first."""
    counts: Counter[str] = Counter()
    busy = 0
    for path in paths:
        for line in path.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            if not count.isdigit():
                continue
            frames = _frames(stack)[1:]
            if not frames or any(m in frames[-1] for m in IDLE):
                continue
            n = int(count)
            busy += n
            for name, markers in CATEGORIES:
                if any(m in f for f in frames for m in markers):
                    counts[name] += n
                    break
            else:
                counts["other"] += n
    return [(name, n / max(1, busy)) for name, n in counts.most_common()]

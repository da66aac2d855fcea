"""Load generation with wrk (HTTP/1.1 keep-alive) and Lua scripts from bench/scripts/.

`ensure_wrk()` installs the Debian package when wrk is missing and we are root; if that
is impossible the runner falls back to bench/pyload.py and says so in the results.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parent / "scripts"
MARKER = "BENCH_JSON "


@dataclass
class LoadSettings:
    threads: int = 2
    connections: int = 8
    duration: float = 10.0
    warmup: float = 3.0
    timeout: float = 10.0


@dataclass
class LoadResult:
    endpoint: str
    tool: str
    requests: int
    duration_s: float
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    max_ms: float
    statuses: dict[str, int] = field(default_factory=dict)
    misses: int = 0
    socket_errors: dict[str, int] = field(default_factory=dict)

    @property
    def ok_fraction(self) -> float:
        return 1.0 - self.misses / self.requests if self.requests else 0.0

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def ensure_wrk(install: bool = True) -> str | None:
    """The path of wrk, installing the Debian package (as root) when missing."""
    found = shutil.which("wrk")
    if found or not install:
        return found
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return None
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for args in (["apt-get", "install", "-y", "-qq", "wrk"],
                 ["apt-get", "update", "-qq"],
                 ["apt-get", "install", "-y", "-qq", "wrk"]):
        result = subprocess.run(args, env=env, capture_output=True, timeout=600, check=False)
        if args[1] == "install" and result.returncode == 0:
            break
    return shutil.which("wrk")


def script_text(name: str) -> str:
    return (SCRIPTS / "common.lua").read_text() + "\n" + (SCRIPTS / f"{name}.lua").read_text()


def parse(endpoint: str, stdout: str) -> LoadResult:
    line = next((ln for ln in stdout.splitlines() if ln.startswith(MARKER)), None)
    if line is None:
        raise RuntimeError(f"wrk printed no summary for {endpoint}:\n{stdout}")
    data = json.loads(line[len(MARKER):])
    lat = data["latency_us"]
    duration = data["duration_us"] / 1e6
    errors = {k: v for k, v in data["errors"].items() if v}
    return LoadResult(
        endpoint=endpoint, tool="wrk", requests=data["requests"], duration_s=round(duration, 3),
        rps=data["requests"] / duration if duration else 0.0,
        p50_ms=lat["p50"] / 1000, p90_ms=lat["p90"] / 1000, p99_ms=lat["p99"] / 1000,
        mean_ms=lat["mean"] / 1000, max_ms=lat["max"] / 1000,
        statuses={str(k): v for k, v in data["statuses"].items()}, misses=data["misses"],
        socket_errors=errors,
    )


def run_wrk(wrk: str, base_url: str, endpoint: str, settings: LoadSettings, *,
            duration: float | None = None, args: tuple[str, ...] = (),
            api_key: str = "", log_dir: Path | None = None) -> LoadResult:
    """One wrk run of bench/scripts/<endpoint>.lua against base_url."""
    seconds = settings.duration if duration is None else duration
    with tempfile.NamedTemporaryFile("w", suffix=f"-{endpoint}.lua", delete=False) as fh:
        fh.write(script_text(endpoint))
        script = fh.name
    try:
        cmd = [wrk, f"-t{settings.threads}", f"-c{settings.connections}",
               f"-d{max(1, round(seconds))}s", f"--timeout={round(settings.timeout)}s",
               "--latency", "-s", script, base_url]
        if args:
            cmd += ["--", *args]
        # The key goes through the environment, not argv, so `ps` does not show it.
        env = {**os.environ, "BENCH_API_KEY": api_key}
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True,
                              timeout=seconds + settings.timeout + 60, check=False)
    finally:
        os.unlink(script)
    if log_dir is not None:
        with open(log_dir / "wrk.log", "a") as log:
            log.write(f"$ {' '.join(cmd)}\n{proc.stdout}{proc.stderr}\n")
    if proc.returncode != 0:
        raise RuntimeError(f"wrk failed ({proc.returncode}) for {endpoint}:\n"
                           f"{proc.stdout}\n{proc.stderr}")
    return parse(endpoint, proc.stdout)

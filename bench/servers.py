"""Throwaway hub instances and servers for the benchmarks, started as an operator would.

Every instance lives in its own temporary folder (and, on PostgreSQL, its own database
on a private server from tests/pg.py). Servers are `privacy-hub serve` processes (granian)
on 127.0.0.1, or the same hub under gunicorn (bench/gunicorn_server.py, for
bench/server_compare.py), each in its own process group, which is killed as a whole when
the block ends, also on errors and Ctrl-C.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

#: SQLite as the hub runs it by default (synchronous=NORMAL and the hub's fdatasync of the
#: WAL), SQLite with synchronous=FULL (the default up to issue 14), PostgreSQL.
BACKENDS = ("sqlite", "sqlite-full", "postgres")
#: granian: what `privacy-hub serve` runs; gunicorn: what it ran up to issue 14
SERVERS = ("granian", "gunicorn")


def hub_command() -> list[str]:
    """The installed `privacy-hub` script next to this interpreter (the venv's)."""
    script = Path(sys.executable).parent / "privacy-hub"
    if script.exists():
        return [str(script)]
    found = shutil.which("privacy-hub")
    if found:
        return [found]
    return [sys.executable, "-m", "privacy_hub"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def clean_env() -> dict[str, str]:
    """This process's environment without any PRIVACY_HUB_* (the Makefile exports one)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("PRIVACY_HUB_")}


@dataclass
class Instance:
    """A hub instance folder (plus its database) and the environment that selects it."""

    path: Path
    env: dict[str, str]
    api_key: str = ""
    log_dir: Path = field(default_factory=Path)

    def cli(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([*hub_command(), *args], env=self.env, cwd=REPO,
                                capture_output=True, text=True, timeout=timeout, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"privacy-hub {' '.join(args)} failed ({result.returncode}):\n"
                               f"{result.stdout}\n{result.stderr}")
        return result

    def init(self) -> str:
        """`privacy-hub init --demo`; returns the printed API key (every scope)."""
        out = self.cli("init", "--demo", timeout=120).stdout
        match = re.search(r"^api_key: (\S+)$", out, re.M)
        if not match:
            raise RuntimeError(f"no api_key in the output of init --demo:\n{out}")
        self.api_key = match.group(1)
        return self.api_key


class BackendFactory:
    """Makes fresh instances of one backend; PostgreSQL instances share one private server."""

    def __init__(self, backend: str, workdir: Path, stack: contextlib.ExitStack) -> None:
        if backend not in BACKENDS:
            raise ValueError(f"unknown backend {backend!r}; choose from {', '.join(BACKENDS)}")
        self.backend = backend
        self.workdir = workdir
        self._pg = None
        if backend == "postgres":
            if str(REPO) not in sys.path:
                sys.path.insert(0, str(REPO))
            from tests.pg import postgres_server

            self._pg = stack.enter_context(postgres_server())

    def database_pid(self) -> int | None:
        """The PostgreSQL postmaster's pid (its backends are its children), else None."""
        if self._pg is None:
            return None
        try:
            return int((self._pg.datadir / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    @property
    def description(self) -> str:
        if self.backend == "sqlite":
            return "SQLite (WAL, synchronous=NORMAL with the hub's fdatasync, the default)"
        if self.backend == "sqlite-full":
            return "SQLite (WAL, synchronous=FULL)"
        return "PostgreSQL (local, fsync=on, synchronous_commit=on)"

    def new_instance(self, name: str) -> Instance:
        path = self.workdir / f"{self.backend}-{name}"
        env = clean_env()
        env["PRIVACY_HUB_INSTANCE_PATH"] = str(path)
        if self.backend == "sqlite-full":
            env["PRIVACY_HUB_SQLITE_SYNCHRONOUS"] = "FULL"
        elif self.backend != "sqlite":  # the default: nothing set, as an operator runs it
            assert self._pg is not None
            dbname = f"bench_{name}".replace("-", "_")
            env["PRIVACY_HUB_DATABASE_URL"] = self._pg.create_database(dbname)
            env["PRIVACY_HUB_SECRET_KEY"] = secrets.token_urlsafe(48)
            env["PRIVACY_HUB_ROOT_KEY_FILE"] = str(path / "root.key")
        instance = Instance(path=path, env=env, log_dir=self.workdir)
        instance.init()
        return instance


@dataclass
class Server:
    base_url: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    def worker_pids(self) -> list[int]:
        """The server's worker processes (children of the main process), for py-spy."""
        try:
            out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(self.process.pid)],
                                 capture_output=True, text=True, check=False).stdout
        except FileNotFoundError:
            return []
        return [int(p) for p in out.split()]


def _ready(port: int) -> bool:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        conn.request("GET", "/readyz")
        return conn.getresponse().status == 200
    except OSError:
        return False
    finally:
        conn.close()


def stop_group(process: subprocess.Popen[bytes], grace: float = 15) -> None:
    """SIGTERM the process group (main process and workers), then SIGKILL if needed."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=grace)
    # Workers may outlive a master that died; the group id is the master's pid.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=5)


@contextlib.contextmanager
def serve(instance: Instance, *, workers: int = 2, threads: int = 4,
          ready_timeout: float = 60, server: str = "granian",
          extra_args: tuple[str, ...] = ()) -> Iterator[Server]:
    """`privacy-hub serve` (``server="granian"``) or bench/gunicorn_server.py
    (``server="gunicorn"``) on a free loopback port, until /readyz answers 200;
    ``extra_args`` go to `privacy-hub serve` (e.g. ``("--no-worker",)``)."""
    if server not in SERVERS:
        raise ValueError(f"unknown server {server!r}; choose from {', '.join(SERVERS)}")
    port = free_port()
    log_path = instance.log_dir / f"{instance.path.name}-{server}-{port}.log"
    command = ([*hub_command(), "serve"] if server == "granian"
               else [sys.executable, "-m", "bench.gunicorn_server"])
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [*command, *extra_args, "--host", "127.0.0.1", "--port", str(port),
             "--workers", str(workers), "--threads", str(threads)],
            env=instance.env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + ready_timeout
        while not _ready(port):
            if process.poll() is not None:
                raise RuntimeError(f"{server} exited with {process.returncode}; "
                                   f"see {log_path}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{server} not ready after {ready_timeout}s; "
                                   f"see {log_path}")
            time.sleep(0.2)
        yield Server(base_url=f"http://127.0.0.1:{port}", port=port, process=process,
                     log_path=log_path)
    finally:
        stop_group(process)


def tree_cpu_seconds(root_pid: int) -> float:
    """User + system CPU of a process and its live descendants (Linux /proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    parents: dict[int, int] = {}
    cpu: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        parents[int(entry.name)] = int(fields[1])
        cpu[int(entry.name)] = (int(fields[11]) + int(fields[12])) / tick
    total, todo = 0.0, [root_pid]
    while todo:
        pid = todo.pop()
        total += cpu.get(pid, 0.0)
        todo += [child for child, parent in parents.items() if parent == pid]
    return total

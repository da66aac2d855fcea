"""A real Privacy Hub for end-to-end tests: ``privacy-hub init`` and ``serve`` as processes.

Nothing is imported from the app: the hub is driven exactly as an operator drives it,
through its command line and environment variables, and talked to over HTTP.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import requests

#: Generous: the first start of a fresh interpreter and the server on a loaded CI box.
READY_TIMEOUT = 60.0
STOP_TIMEOUT = 20.0


def wait_for(what: str, check: Callable[[], Any], timeout: float = 60.0,
             interval: float = 0.2) -> Any:
    """Poll ``check`` until it returns something truthy (returned), or fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cli_command() -> list[str]:
    """The ``privacy-hub`` script next to this interpreter, or ``python -m privacy_hub.cli``."""
    script = Path(sys.executable).with_name("privacy-hub")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "privacy_hub"]


class LiveHub:
    """One hub instance: an instance folder and a database, and at most one server.

    With no ``database_url`` the hub uses its embedded default, SQLite in the instance
    folder, and keeps its secrets there; otherwise it gets the URL, a random
    ``PRIVACY_HUB_SECRET_KEY`` and an explicit root key file, as a real deployment would.
    """

    def __init__(self, instance: Path, *, database_url: str | None = None,
                 workers: int = 2, threads: int = 4) -> None:
        self.instance = instance
        self.database_url = database_url
        self.workers = workers
        self.threads = threads
        self.port = free_port()
        self.api_key: str | None = None
        self.init_output = ""
        self.process: subprocess.Popen[bytes] | None = None
        self.log_dir = instance.parent / f"{instance.name}-logs"
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self._log: IO[bytes] | None = None
        self._starts = 0
        self.env = self._environment()

    def _environment(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PRIVACY_HUB_")}
        env["PRIVACY_HUB_INSTANCE_PATH"] = str(self.instance)
        env["PYTHONUNBUFFERED"] = "1"
        if self.database_url is not None:
            env["PRIVACY_HUB_DATABASE_URL"] = self.database_url
            env["PRIVACY_HUB_SECRET_KEY"] = secrets.token_urlsafe(48)
            env["PRIVACY_HUB_ROOT_KEY_FILE"] = str(self.instance / "root.key")
        return env

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        return self.base_url + path

    @property
    def headers(self) -> dict[str, str]:
        assert self.api_key, "call init() first"
        return {"Authorization": f"Bearer {self.api_key}"}

    # -- the command line ------------------------------------------------------------------

    def cli(self, *args: str, timeout: float = 120.0,
            input: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run ``privacy-hub <args>`` against this instance; output is kept in the log dir."""
        result = subprocess.run([*cli_command(), *args], env=self.env, capture_output=True,
                                text=True, timeout=timeout, check=False, input=input)
        name = "-".join(a for a in args if re.fullmatch(r"[a-z-]+", a)) or "cli"
        with open(self.log_dir / f"cli-{name}.log", "a", encoding="utf-8") as fh:
            fh.write(f"$ privacy-hub {' '.join(args)}  -> exit {result.returncode}\n")
            fh.write(result.stdout + result.stderr)
        return result

    def init(self) -> str:
        """``privacy-hub init --demo``: create the instance and return the demo API key."""
        result = self.cli("init", "--demo")
        assert result.returncode == 0, f"init failed:\n{result.stdout}\n{result.stderr}"
        match = re.search(r"^api_key: (\S+)$", result.stdout, re.MULTILINE)
        assert match, f"init printed no api_key:\n{result.stdout}"
        self.api_key = match.group(1)
        self.init_output = result.stdout
        return self.api_key

    def create_staff(self, email: str, role: str, password: str) -> str:
        """``privacy-hub staff create`` (password on standard input): the TOTP secret."""
        result = self.cli("staff", "create", email, "--role", role, input=password + "\n")
        assert result.returncode == 0, f"staff create failed:\n{result.stdout}\n{result.stderr}"
        match = re.search(r"^totp_uri: otpauth://\S+[?&]secret=([A-Z2-7]+)", result.stdout,
                          re.MULTILINE)
        assert match, f"staff create printed no totp_uri:\n{result.stdout}"
        return match.group(1)

    # -- the server --------------------------------------------------------------------------

    def start(self) -> None:
        """``privacy-hub serve`` in its own process group; return once /readyz says ok."""
        assert self.process is None, "already running"
        self._starts += 1
        # SIM115: the log stays open for the life of the server; _end() closes it.
        self._log = open(self.log_dir / f"serve-{self._starts}.log", "wb")  # noqa: SIM115
        self.process = subprocess.Popen(
            [*cli_command(), "serve", "--host", "127.0.0.1", "--port", str(self.port),
             "--workers", str(self.workers), "--threads", str(self.threads)],
            env=self.env, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own process group: kill() reaches every worker
        )
        try:
            self._wait_ready()
        except BaseException:
            self.kill()
            raise

    def _wait_ready(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + READY_TIMEOUT
        last = "no answer"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited with {self.process.returncode}:\n"
                                   + self.logs()[-3000:])
            try:
                resp = requests.get(self.url("/readyz"), timeout=2)
                if resp.status_code == 200:
                    return
                last = f"{resp.status_code} {resp.text[:200]}"
            except requests.RequestException as exc:
                last = type(exc).__name__
            time.sleep(0.1)
        raise RuntimeError(f"the server was not ready after {READY_TIMEOUT}s ({last}):\n"
                           + self.logs()[-3000:])

    def stop(self) -> int:
        """SIGTERM, as a service manager stops it; the server finishes in-flight requests
        (tests/e2e/test_graceful_shutdown.py)."""
        return self._end(signal.SIGTERM)

    def kill(self) -> int:
        """SIGKILL to the whole process group: a crash, mid-request, nothing flushed."""
        return self._end(signal.SIGKILL)

    def restart(self) -> None:
        if self.process is not None:
            self.stop()
        self.start()

    def _end(self, sig: signal.Signals) -> int:
        process, self.process = self.process, None
        if process is None:
            return 0
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)  # start_new_session: the group id is its pid
        try:
            code = process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            code = process.wait(timeout=STOP_TIMEOUT)
        if sig == signal.SIGKILL or code != 0:
            # Workers whose master died get no parent to reap them: take the group down.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
        self._wait_group_gone(process.pid)
        if self._log is not None:
            self._log.close()
            self._log = None
        return code

    @staticmethod
    def _wait_group_gone(pgid: int, timeout: float = STOP_TIMEOUT) -> None:
        """Until no live process of the group is left (workers die just after the master).

        Orphaned workers are reaped by PID 1, which in some containers never happens:
        zombies are dead, so they do not count.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not _live_members(pgid):
                return
            time.sleep(0.02)
        raise RuntimeError(f"processes {_live_members(pgid)} of group {pgid} outlived SIGKILL")

    def close(self) -> None:
        """Teardown: whatever state the test left it in, no process survives."""
        self.kill()

    def logs(self) -> str:
        """Everything the server and the command line printed, all runs."""
        parts = []
        for path in sorted(self.log_dir.glob("*.log")):
            parts.append(path.read_text(encoding="utf-8", errors="replace"))
        return "\n".join(parts)


def _live_members(pgid: int) -> list[int]:
    """Pids in process group ``pgid`` that are not zombies (Linux /proc; else killpg)."""
    proc = Path("/proc")
    if not (proc / "self" / "stat").exists():  # pragma: no cover - not Linux
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            return []
        return [pgid]
    members = []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # gone meanwhile
        # "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses
        fields = stat[stat.rindex(")") + 2:].split()
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(entry.name))
    return members

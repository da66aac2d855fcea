"""A real, throwaway PostgreSQL server for the test run.

PostgreSQL refuses to run as root, so when the suite runs as root the cluster is
initialised and started as the ``postgres`` user, in a temporary directory, on a free
loopback port. Nothing here is a mock: the suite talks to the real server.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


def _find_bin(name: str) -> str:
    for candidate in sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), reverse=True):
        return str(candidate)
    found = shutil.which(name)
    if not found:
        raise RuntimeError(
            f"PostgreSQL binary {name!r} not found: `make test` installs postgresql; "
            "install it or set PRIVACY_HUB_TEST_DATABASE_URL to a server of your own"
        )
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class PostgresServer:
    port: int
    datadir: Path
    user: str

    def url(self, dbname: str) -> str:
        return f"postgresql+psycopg://{self.user}@127.0.0.1:{self.port}/{dbname}"

    def create_database(self, dbname: str) -> str:
        self._psql(f'CREATE DATABASE "{dbname}"')
        return self.url(dbname)

    def drop_database(self, dbname: str) -> None:
        self._psql(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')

    def _psql(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(
            host="127.0.0.1", port=self.port, user=self.user, dbname="postgres", autocommit=True
        ) as conn:
            conn.execute(sql)  # type: ignore[arg-type]


def _run_as(user: str | None, args: list[str], **kw: object) -> subprocess.CompletedProcess[bytes]:
    if user:
        args = ["runuser", "-u", user, "--", *args]
    return subprocess.run(args, check=True, capture_output=True, **kw)  # type: ignore[call-overload]


@contextlib.contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    """Start a private PostgreSQL cluster; stop and remove it afterwards."""
    as_user: str | None = None
    if os.geteuid() == 0:
        as_user = "postgres"
        pwd.getpwnam(as_user)  # raises KeyError with a clear name if missing
    tmp = Path(tempfile.mkdtemp(prefix="privacy-hub-pg-"))
    datadir = tmp / "data"
    if as_user:
        shutil.chown(tmp, user=as_user)
    _run_as(
        as_user,
        [_find_bin("initdb"), "-D", str(datadir), "-U", "postgres", "--auth=trust",
         "--encoding=UTF8", "--locale=C.UTF-8"],
    )
    port = _free_port()
    opts = (
        f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={tmp} "
        "-c fsync=on -c max_connections=100 -c shared_buffers=64MB"
    )
    _run_as(as_user, [_find_bin("pg_ctl"), "-D", str(datadir), "-o", opts,
                      "-l", str(tmp / "server.log"), "-w", "-t", "60", "start"])
    server = PostgresServer(port=port, datadir=datadir, user="postgres")
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                server._psql("SELECT 1")
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        yield server
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):
            _run_as(as_user, [_find_bin("pg_ctl"), "-D", str(datadir), "-m", "immediate", "stop"])
        shutil.rmtree(tmp, ignore_errors=True)

"""Webhooks are never lost when the hub restarts (API.md "Systems and webhooks").

Real processes: ``privacy-hub worker`` and ``privacy-hub serve`` run as subprocesses
against a real database (SQLite and PostgreSQL) and deliver to a real HTTP receiver on
loopback. Workers are killed with SIGKILL in the middle of a delivery.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

import audit
from consent.domain_events import DomainEvent, emit
from privacy_hub.db import transaction
from privacy_hub.hub import Hub
from privacy_hub.jobs.outbox import OutboxJob
from privacy_hub.jobs.worker import INTERRUPTED
from tests.e2e.webhook_sink import WebhookSink, delivered_ids
from tests.hubs import make_hub

pytestmark = pytest.mark.slow

EVENTS = 200
HELD = 60  # the request the receiver keeps open while the worker is killed
LEASE = 2.0


class Processes:
    """Subprocesses started by a test, each in its own session; all killed at the end."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.started: list[subprocess.Popen[bytes]] = []

    def start(self, env: dict[str, str], *args: str) -> subprocess.Popen[bytes]:
        log = self.tmp_path / f"proc-{len(self.started)}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen([sys.executable, "-m", "privacy_hub", *args], env=env,
                                    stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        proc.log = log  # type: ignore[attr-defined]
        self.started.append(proc)
        return proc

    def kill(self, proc: subprocess.Popen[bytes]) -> None:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)

    def stop_all(self) -> None:
        for proc in self.started:
            with contextlib.suppress(ProcessLookupError):
                self.kill(proc)


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    procs = Processes(tmp_path)
    try:
        yield procs
    finally:
        procs.stop_all()


def hub_env(hub: Hub) -> dict[str, str]:
    settings = hub.settings
    assert settings.secret_key is not None
    env = {k: v for k, v in os.environ.items() if not k.startswith("PRIVACY_HUB_")}
    env.update({
        "PRIVACY_HUB_INSTANCE_PATH": str(settings.instance_path),
        "PRIVACY_HUB_DATABASE_URL": settings.database_url,
        "PRIVACY_HUB_SECRET_KEY": settings.secret_key.decode(),
        "PRIVACY_HUB_ROOT_KEY_FILE": str(settings.root_key_path),
        "PRIVACY_HUB_SQLITE_SYNCHRONOUS": "NORMAL",
        "PRIVACY_HUB_WORKER_LEASE_SECONDS": str(LEASE),
        "PRIVACY_HUB_WEBHOOK_BACKOFF_BASE": "0.2",
    })
    return env


def register(hub: Hub, url: str) -> None:
    with transaction(hub.sessions) as session:
        hub.systems.create(session, name="crm", scopes=["consents:read"], webhook_url=url,
                           actor=audit.Actor("cli", "tests"))


def enqueue(hub: Hub, count: int, start: int = 0) -> set[str]:
    """Commit ``count`` events; returns their event ids."""
    for first in range(start, start + count, 50):
        with transaction(hub.sessions) as session:
            for n in range(first, min(first + 50, start + count)):
                emit(session, DomainEvent("consent.changed", {"customer_id": f"c-{n}", "n": n},
                                          customer_id=f"c-{n}", purpose="marketing.email"))
    with hub.sessions() as session:
        return {e for e in session.scalars(select(OutboxJob.event_id)) if e}


@pytest.mark.parametrize("db_backend", ["sqlite", "postgresql"])
def test_a_worker_killed_mid_delivery_loses_no_event(
        tmp_path: Path, db_url: str, processes: Processes) -> None:
    hub = make_hub(tmp_path, db_url, worker_lease_seconds=LEASE)
    try:
        with WebhookSink(delay=0.01) as sink:
            register(hub, sink.url)
            expected = enqueue(hub, EVENTS)
            assert len(expected) == EVENTS
            sink.hold_from(HELD)
            env = hub_env(hub)
            first = processes.start(env, "worker", "--poll-interval", "0.1")
            assert sink.wait_for(lambda got: len(got) >= HELD, timeout=120), \
                first.log.read_text()  # type: ignore[attr-defined]
            processes.kill(first)  # SIGKILL while the receiver holds a delivery open
            held_id = sink.received[HELD - 1].event_id
            sink.release()
            assert delivered_ids(sink.received) != expected  # the kill did cut the work short

            second = processes.start(env, "worker", "--poll-interval", "0.1")
            assert sink.wait_for(lambda got: delivered_ids(got) >= expected, timeout=120), \
                second.log.read_text()  # type: ignore[attr-defined]
            second.send_signal(signal.SIGTERM)  # finish the current job, then exit
            assert second.wait(20) == 0

        ids = sink.event_ids()
        assert set(ids) == expected
        # At least once: only the delivery cut off by the kill arrived twice.
        assert len(ids) == EVENTS + 1 and ids.count(held_id) == 2
        with hub.sessions() as session:
            rows = list(session.scalars(select(OutboxJob)))
        assert {r.status for r in rows} == {"delivered"}
        (interrupted,) = [r for r in rows if r.event_id == held_id]
        assert (interrupted.attempts, interrupted.last_error) == (2, INTERRUPTED)
    finally:
        hub.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _owners(log: Path) -> list[int]:
    """Pids that logged taking the instance's worker lock, in order."""
    pattern = re.compile(r"\[(\d+)\] INFO privacy_hub\.jobs\.runners: this process runs the instance's")
    return [int(m.group(1)) for m in pattern.finditer(log.read_text(errors="replace"))]


def _wait(predicate: object, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.1)
    return False


@pytest.mark.parametrize("db_backend", ["sqlite"])
def test_serve_runs_one_worker_per_instance_and_a_restarted_process_takes_over(
        tmp_path: Path, db_url: str, processes: Processes) -> None:
    """API.md: `serve` on the embedded default runs one in-process background worker."""
    hub = make_hub(tmp_path, db_url, worker_lease_seconds=LEASE)
    try:
        with WebhookSink() as sink:
            register(hub, sink.url)
            port = _free_port()
            server = processes.start(hub_env(hub), "serve", "--port", str(port), "--workers", "3")
            log: Path = server.log  # type: ignore[attr-defined]

            def ready() -> bool:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                        return True
                except OSError:
                    return False

            assert _wait(ready, 60), log.read_text()
            expected = enqueue(hub, 5)
            assert sink.wait_for(lambda got: delivered_ids(got) >= expected, 30), log.read_text()
            assert _wait(lambda: len(_owners(log)) == 1, 10)
            time.sleep(1.5)  # the other server workers keep waiting for the lock
            (owner,) = _owners(log)

            os.kill(owner, signal.SIGKILL)  # granian starts a new worker; one of them takes over
            assert _wait(lambda: len(_owners(log)) == 2, 30), log.read_text()
            assert _owners(log)[1] != owner
            expected |= enqueue(hub, 5, start=5)
            assert sink.wait_for(lambda got: delivered_ids(got) >= expected, 30), log.read_text()

            server.send_signal(signal.SIGTERM)
            assert server.wait(30) == 0, log.read_text()
        assert len(_owners(log)) == 2
    finally:
        hub.close()

"""`privacy-hub import`, `keys rotate` and `retention run` run in a real terminal (a
pseudo-terminal): each draws a progress bar with a rate and the time left, and the summary
line still comes at the end. Progress shows counts only: a seeded email never appears.
Outside a terminal (click's CliRunner): plain lines, in tests/integration/test_import.py
and tests/unit/test_cli_progress.py. The embedded default (SQLite); the pass's callback on
both backends: tests/web/test_retention_progress.py."""

from __future__ import annotations

import csv
import os
import pty
import re
import select
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from consent.models import ConsentCheck
from privacy_hub.cli import main
from privacy_hub.config import Settings
from privacy_hub.db import transaction
from privacy_hub.hub import Hub
from tests.conftest import SEED_EMAIL

pytestmark = pytest.mark.slow

SCRIPT = Path(sys.executable).with_name("privacy-hub")
CUSTOMERS = 1500
ANSI = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]")


def in_terminal(env: dict[str, str], *args: str, timeout: float = 180) -> tuple[int, str]:
    """Run the command with a pseudo-terminal as stdin, stdout and stderr: its exit
    status and everything it drew (colours and cursor moves taken out)."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: becomes the command
        try:
            os.execve(SCRIPT, [str(SCRIPT), *args], env)  # noqa: S606 - a fixed program, no shell
        finally:
            os._exit(127)
    drawn = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 1)
            if not ready:
                continue
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # the terminal closed: the command is done
                break
            if not chunk:
                break
            drawn += chunk
    finally:
        os.close(fd)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), ANSI.sub(b"", drawn).decode("utf-8", "replace")


def assert_a_bar_with_rate_and_time_left(drawn: str, label: str, unit: str) -> None:
    assert "━" in drawn, drawn[-2000:]  # rich's bar
    assert re.search(rf"{re.escape(label)} .*━", drawn), drawn[-2000:]
    assert re.search(rf"\d[\d,]* {unit}/s", drawn), drawn[-2000:]
    assert re.search(r"\d+:\d\d:\d\d left", drawn), drawn[-2000:]


@pytest.fixture(scope="module")
def instance(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("tty") / "instance"


@pytest.fixture(scope="module")
def env(instance: Path) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PRIVACY_HUB_")}
    return {**clean, "PRIVACY_HUB_INSTANCE_PATH": str(instance), "TERM": "xterm",
            "COLUMNS": "160"}


@pytest.fixture(scope="module")
def imported(env: dict[str, str], instance: Path) -> str:
    """An embedded instance; the import under a terminal, drawn (the first test reads it:
    the other commands need its customers and their keys)."""
    init = CliRunner().invoke(main, ["init"], env={"PRIVACY_HUB_INSTANCE_PATH": str(instance)})
    assert init.exit_code == 0, init.output
    path = instance.parent / "crm.csv"
    with path.open("w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["external_id", "email", "first_name"])
        out.writerow(["CRM-SEED", SEED_EMAIL, "Ada"])
        for n in range(1, CUSTOMERS):
            out.writerow([f"CRM-{n}", f"c{n}@example.com", "Kim"])
    code, drawn = in_terminal(env, "import", str(path), "--batch-size", "25")
    assert code == 0, drawn[-2000:]
    return drawn


def test_import_in_a_terminal_draws_a_bar_with_rows_per_second_and_time_left(
        imported: str) -> None:
    assert_a_bar_with_rate_and_time_left(imported, "import", "rows")
    assert f"{CUSTOMERS}/{CUSTOMERS}" in imported  # the total: the file's rows
    assert imported.rstrip().endswith(f"imported {CUSTOMERS} new, updated 0, rejected 0 rows")
    assert SEED_EMAIL not in imported and "c7@example.com" not in imported


def test_keys_rotate_in_a_terminal_draws_a_bar_with_keys_per_second_and_time_left(
        imported: str, env: dict[str, str]) -> None:
    code, drawn = in_terminal(env, "keys", "rotate", "--batch-size", "20")
    assert code == 0, drawn[-2000:]
    assert_a_bar_with_rate_and_time_left(drawn, "re-wrapping data keys", "keys")
    assert drawn.rstrip().endswith("older versions retired")
    assert f"{CUSTOMERS} data keys re-wrapped" in drawn


def test_retention_run_in_a_terminal_draws_the_pass_and_each_store(
        imported: str, env: dict[str, str], instance: Path) -> None:
    """R-RET-01: the pass counts what has run out first, so its bar has a time left."""
    due = 600
    settings = Settings.from_env({"PRIVACY_HUB_INSTANCE_PATH": str(instance)})
    hub = Hub.open(settings)
    try:
        old = datetime.now(UTC) - timedelta(days=settings.retention_check_log_days + 1)
        with transaction(hub.sessions) as s:
            for _ in range(due):
                s.add(ConsentCheck(checked_at=old, system="crm", customer_id=str(uuid.uuid4()),
                                   purpose="marketing.email", allowed=True, reason="granted",
                                   via="check"))
    finally:
        hub.close()
    code, drawn = in_terminal({**env, "PRIVACY_HUB_RETENTION_BATCH_SIZE": "5"},
                              "retention", "run")
    assert code == 0, drawn[-2000:]
    assert_a_bar_with_rate_and_time_left(drawn, "retention pass", "rows")
    assert re.search(r"retention check_log .*━", drawn)
    assert re.search(rf"^check_log: {due}\r?$", drawn, re.M)  # the summary, as before
    assert re.search(r"^deleted \d+ in all\r?$", drawn, re.M)

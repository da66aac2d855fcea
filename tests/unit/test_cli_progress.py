"""The progress of long commands (privacy_hub/cli_progress.py): plain lines outside a
terminal, at the start, every few seconds and at the end, with a count, a rate and the
time left only where a total is known; a rich bar in one. The commands under a real
terminal: tests/integration/test_cli_progress_tty.py."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from privacy_hub import cli_progress
from privacy_hub.cli_progress import _Lines, count_lines, progress


class Screen(io.StringIO):
    """A terminal as far as rich can tell, that keeps what was drawn."""

    def isatty(self) -> bool:
        return True


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_plain_lines_come_at_the_start_every_interval_and_at_the_end() -> None:
    clock, lines = Clock(), []
    with _Lines(lines.append, interval=5.0, clock=clock) as tracker:
        meter = tracker.task("import", total=10_000)
        clock.now += 2
        meter.update(1000)          # the first: shown at once
        clock.now += 1
        meter.update(2000)          # a second later: not shown
        clock.now += 4
        meter.update(5000)          # five seconds after the last line: shown
        clock.now += 1
        meter.update(6000)
    assert lines[0] == "import: 1,000/10,000 rows, 500 rows/s, 0:00:18 left"
    assert lines[1] == "import: 5,000/10,000 rows, 714 rows/s, 0:00:07 left"
    assert lines[2] == "import: 6,000 rows in 0:00:08, 750 rows/s"  # finished by the block
    assert len(lines) == 3


def test_without_a_total_the_lines_show_a_count_and_a_rate_and_no_time_left() -> None:
    clock, lines = Clock(), []
    with _Lines(lines.append, interval=5.0, clock=clock) as tracker:
        meter = tracker.task("retention check_log", unit="rows")
        clock.now += 4
        meter.update(2000)
        meter.finish()
        meter.finish()  # once only
    assert lines == ["retention check_log: 2,000 rows, 500 rows/s",
                     "retention check_log: 2,000 rows in 0:00:04, 500 rows/s"]
    assert not any("left" in line for line in lines)


def test_work_that_fails_is_not_reported_as_done() -> None:
    clock, lines = Clock(), []

    def rotate_and_fail() -> None:
        with _Lines(lines.append, 5.0, clock) as tracker:
            meter = tracker.task("re-wrapping data keys", total=10, unit="keys")
            clock.now += 1
            meter.update(3, 10)
            raise RuntimeError("stopped")

    with pytest.raises(RuntimeError, match="stopped"):
        rotate_and_fail()
    assert lines == ["re-wrapping data keys: 3/10 keys, 3 keys/s, 0:00:02 left"]


def test_outside_a_terminal_progress_writes_lines_to_stderr(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    stderr = io.StringIO()  # not a tty
    monkeypatch.setattr(cli_progress.sys, "stderr", stderr)
    assert cli_progress.stderr_is_terminal() is False
    with progress() as tracker:
        tracker.task("import", total=3).update(3)
    assert capsys.readouterr().out == ""
    assert "import: 3/3 rows" in stderr.getvalue()
    assert "import: 3 rows in 0:00:00" in stderr.getvalue()


def test_in_a_terminal_progress_draws_rich_bars_with_a_rate_and_the_time_left(
        monkeypatch: pytest.MonkeyPatch) -> None:
    screen = Screen()
    monkeypatch.setattr(cli_progress.sys, "stderr", screen)
    monkeypatch.setenv("TERM", "xterm")
    assert cli_progress.stderr_is_terminal() is True
    clock = Clock()
    with progress() as tracker:
        tracker.bars.get_time = clock  # type: ignore[attr-defined]
        meter = tracker.task("import", total=1000)
        for done in range(100, 600, 100):
            clock.now += 1
            meter.update(done)
        tracker.bars.refresh()  # type: ignore[attr-defined]
        drawn = screen.getvalue()
    assert "━" in drawn and "import" in drawn
    assert "100 rows/s" in drawn and "0:00:05 left" in drawn and "500/1000" in drawn


def test_count_lines_counts_a_last_line_without_a_newline(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_bytes(b"h\n1\n2\n")
    (tmp_path / "b.csv").write_bytes(b"h\n1\n2")
    (tmp_path / "c.csv").write_bytes(b"")
    (tmp_path / "big.csv").write_bytes(b"x\n" * ((1 << 20) + 3))  # over a block
    assert count_lines(tmp_path / "a.csv") == 3
    assert count_lines(tmp_path / "b.csv") == 3
    assert count_lines(tmp_path / "c.csv") == 0
    assert count_lines(tmp_path / "big.csv") == (1 << 20) + 3

"""The progress of long commands (`import`, `keys rotate`, `retention run`), on stderr.

In a terminal: rich's progress bar with the count, the rate and the time left. Anywhere
else (a pipe, a CI log, cron): plain lines, one when the work starts moving, then one
every ``interval`` seconds, and one when it is done. The choice is made here, once, for
every command. Only labels, counts, rates and times are shown: never a row's content.
The summary lines the commands print on stdout are not progress and stay as they are.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Protocol

import click

if TYPE_CHECKING:
    from rich.progress import Progress, Task, TaskID
    from rich.text import Text

#: seconds between two plain lines of one piece of work
INTERVAL = 5.0


class Meter(Protocol):
    """One piece of work being measured."""

    def update(self, done: int, total: int | None = None) -> None:
        """``done`` so far (absolute, not a step); ``total`` when it became known."""

    def finish(self) -> None:
        """The work is over: what was done is all there is (a total becomes the count)."""


class Tracker(Protocol):
    """Makes a meter per piece of work; ``progress()`` chooses which kind."""

    def task(self, label: str, *, total: int | None = None, unit: str = "rows") -> Meter:
        """A new meter; ``total`` None when it is not known (then no time left is shown)."""


@contextmanager
def progress(*, terminal: bool | None = None, interval: float = INTERVAL) -> Iterator[Tracker]:
    """A bar when stderr is a terminal (``terminal`` overrides the check), lines otherwise.

    When the block ends without an error, every meter still running is finished."""
    tracker: _Bars | _Lines
    if terminal is None:
        terminal = stderr_is_terminal()
    tracker = _Bars() if terminal else _Lines(lambda line: click.echo(line, err=True), interval)
    with tracker:
        yield tracker


def stderr_is_terminal() -> bool:
    """Whether stderr is an interactive terminal a bar can be redrawn on."""
    stream = sys.stderr
    try:
        if not stream.isatty():
            return False
    except (AttributeError, ValueError):  # replaced or closed streams
        return False
    return os.environ.get("TERM", "") != "dumb"


def count_lines(path: Any) -> int:
    """The lines of a file, counted in binary blocks: cheap before an import (measured:
    30,000 rows, 3 MB, in 20 ms; importing them took 15 s). A last line without a
    newline counts."""
    lines, last = 0, b"\n"
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            lines += block.count(b"\n")
            last = block[-1:]
    return lines + (last != b"\n")


# -- plain lines ---------------------------------------------------------------------------
def _duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}"


class _LineMeter:
    def __init__(self, echo: Callable[[str], None], label: str, total: int | None, unit: str,
                 interval: float, clock: Callable[[], float]) -> None:
        self.echo, self.label, self.total, self.unit = echo, label, total, unit
        self.interval, self.clock = interval, clock
        self.started = clock()
        self.done = 0
        self.shown: float | None = None
        self.finished = False

    def update(self, done: int, total: int | None = None) -> None:
        self.done = done
        if total is not None:
            self.total = total
        now = self.clock()
        if self.shown is None or now - self.shown >= self.interval:
            self.shown = now
            self.echo(self._line(now))

    def _line(self, now: float) -> str:
        elapsed = now - self.started
        of = "" if self.total is None else f"/{self.total:,}"
        line = f"{self.label}: {self.done:,}{of} {self.unit}"
        if elapsed > 0 and self.done:
            rate = self.done / elapsed
            line += f", {rate:,.0f} {self.unit}/s"
            if self.total is not None and self.total >= self.done:
                line += f", {_duration((self.total - self.done) / rate)} left"
        return line

    def finish(self) -> None:
        if self.finished:
            return
        self.finished = True
        elapsed = self.clock() - self.started
        line = f"{self.label}: {self.done:,} {self.unit} in {_duration(elapsed)}"
        if elapsed > 0 and self.done:
            line += f", {self.done / elapsed:,.0f} {self.unit}/s"
        self.echo(line)


class _Lines:
    def __init__(self, echo: Callable[[str], None], interval: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.echo, self.interval, self.clock = echo, interval, clock
        self.meters: list[_LineMeter] = []

    def task(self, label: str, *, total: int | None = None, unit: str = "rows") -> Meter:
        meter = _LineMeter(self.echo, label, total, unit, self.interval, self.clock)
        self.meters.append(meter)
        return meter

    def __enter__(self) -> _Lines:
        return self

    def __exit__(self, failed: type[BaseException] | None, *exc: object) -> None:
        if failed is None:  # work that failed is not reported as done
            for meter in self.meters:
                meter.finish()


# -- a bar in a terminal -------------------------------------------------------------------
class _BarMeter:
    def __init__(self, bars: Progress, task_id: TaskID) -> None:
        self.bars, self.task_id = bars, task_id
        self.done = 0

    def update(self, done: int, total: int | None = None) -> None:
        self.done = done
        if total is None:
            self.bars.update(self.task_id, completed=done)
        else:
            self.bars.update(self.task_id, completed=done, total=total)

    def finish(self) -> None:
        # What was done is the whole: the bar ends full, with the true count.
        self.bars.update(self.task_id, completed=self.done, total=self.done)


def _columns() -> list[Any]:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        ProgressColumn,
        TaskProgressColumn,
        TextColumn,
        TimeRemainingColumn,
    )
    from rich.text import Text

    class Rate(ProgressColumn):
        """Units a second, over rich's recent window (the whole run once finished)."""

        def render(self, task: Task) -> Text:
            speed = task.finished_speed or task.speed
            if speed is None:
                return Text("")
            return Text(f"{speed:,.0f} {task.fields.get('unit', 'rows')}/s",
                        style="progress.data.speed")

    class Left(TimeRemainingColumn):
        """Time left, only where the total is known: no time rather than a wrong one."""

        def render(self, task: Task) -> Text:
            if task.total is None:
                return Text("")
            shown = super().render(task)
            if not task.finished:
                shown.append(" left")
            return shown

    return [TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(),
            MofNCompleteColumn(), Rate(), Left(elapsed_when_finished=True)]


class _Bars:
    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import Progress

        self.bars = Progress(*_columns(), console=Console(file=sys.stderr))
        self.meters: list[_BarMeter] = []

    def task(self, label: str, *, total: int | None = None, unit: str = "rows") -> Meter:
        meter = _BarMeter(self.bars, self.bars.add_task(label, total=total, unit=unit))
        self.meters.append(meter)
        return meter

    def __enter__(self) -> _Bars:
        self.bars.start()
        return self

    def __exit__(self, failed: type[BaseException] | None, *exc: object) -> None:
        try:
            if failed is None:  # work that failed is not drawn as done
                for meter in self.meters:
                    meter.finish()
        finally:
            self.bars.stop()

"""Timing `privacy-hub import FILE.csv` as an operator runs it (a fresh process)."""

from __future__ import annotations

import re
import resource
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from bench.servers import Instance

SUMMARY = re.compile(r"imported (\d+) new, updated (\d+), rejected (\d+) rows")


@dataclass
class ImportResult:
    rows: int
    created: int
    updated: int
    rejected: int
    seconds: float
    #: the same command's start-up (`privacy-hub import --help` is not enough: it does
    #: not open the hub), measured as an import of a one-row file
    startup_seconds: float
    #: user + system CPU of the import (its worker processes included, the database
    #: server not): less sensitive than the wall-clock to other jobs on the machine
    cpu_seconds: float = 0.0

    @property
    def per_second(self) -> float:
        """Customers created per wall-clock second, process start-up included."""
        return self.created / self.seconds if self.seconds else 0.0

    @property
    def cpu_us_per_customer(self) -> float:
        return self.cpu_seconds * 1e6 / self.created if self.created else 0.0

    def as_dict(self) -> dict[str, object]:
        return {**asdict(self), "per_second": round(self.per_second, 1),
                "cpu_us_per_customer": round(self.cpu_us_per_customer, 1)}


def run_import(instance: Instance, csv_path: Path, rows: int, *, batch_size: int | None = None,
               startup_csv: Path | None = None, timeout: float = 1800) -> ImportResult:
    args = ["import", str(csv_path)]
    if batch_size:
        args += ["--batch-size", str(batch_size)]
    startup = 0.0
    if startup_csv is not None:
        start = time.perf_counter()
        instance.cli("import", str(startup_csv), timeout=120)
        startup = time.perf_counter() - start
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    result = instance.cli(*args, timeout=timeout)
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    match = SUMMARY.search(result.stdout)
    if not match:
        raise RuntimeError(f"unexpected output of privacy-hub import:\n{result.stdout}")
    created, updated, rejected = (int(g) for g in match.groups())
    return ImportResult(rows=rows, created=created, updated=updated, rejected=rejected,
                        seconds=round(seconds, 3), startup_seconds=round(startup, 3),
                        cpu_seconds=round(cpu, 3))

"""Checking and sealing in forked worker processes, ahead of the loading.

Checking and sealing need no I/O and cost more CPU than the database work: for large
files, worker processes check and seal the next batches while this one loads.
"""

from __future__ import annotations

import multiprocessing
from collections import deque
from collections.abc import Generator, Iterator
from concurrent.futures import Future, ProcessPoolExecutor

from privacy_hub.importer.checking import CheckedRow, RowChecker
from privacy_hub.importer.reading import Record

WORKERS = 2
# Batches checked ahead of the loading: enough to keep the workers busy through a slow
# commit (an fsync on a busy disk), a few MB of memory.
AHEAD = 8

_worker_checker: RowChecker | None = None


def can_fork() -> bool:
    """Whether worker processes can be forked here (they must inherit the checker)."""
    return "fork" in multiprocessing.get_all_start_methods()


def _start_worker(checker: RowChecker) -> None:
    global _worker_checker  # one checker per worker process
    _worker_checker = checker


def _check_in_worker(records: list[Record]) -> list[CheckedRow]:
    if _worker_checker is None:
        raise RuntimeError("_start_worker did not run in this process")
    return _worker_checker.check_all(records)


def checked_in_workers(checker: RowChecker, batches: Iterator[list[Record]]
                       ) -> Generator[list[CheckedRow]]:
    """Batches checked and sealed by worker processes, in order, ahead of the loading.

    Forked, so the checker and the keys it wraps under are inherited, never pickled,
    and no data key leaves a worker unwrapped. Workers never touch the database
    connections they inherit (psycopg does not close them in a child process).
    """
    pool = ProcessPoolExecutor(WORKERS, mp_context=multiprocessing.get_context("fork"),
                               initializer=_start_worker, initargs=(checker,))
    pending: deque[Future[list[CheckedRow]]] = deque()
    try:
        for batch in batches:
            pending.append(pool.submit(_check_in_worker, batch))
            if len(pending) > AHEAD:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        pool.shutdown(cancel_futures=True)

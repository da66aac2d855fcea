"""Bulk-load customers from a CRM export: ``privacy-hub import FILE``.

Each row is validated like an API body (CustomerCreateSchema, then the vault's
normalisation) and sealed as a new customer under a fresh key. Rows matching an existing
customer (external_id, else email, as Vault.upsert) are updated through upsert instead;
the new ones are inserted in bulk (privacy_hub.vault.bulk): per batch, one blind-index
query per identifier, one key insert and one customer insert (COPY on PostgreSQL), and
one audit entry per customer created. One transaction per batch, so a crash loses at most
the batch in flight. Reports never echo a cell: it may be personal data.

The parts: ``reading`` (header, records, batches), ``checking`` (validating and sealing
rows, no I/O), ``workers`` (checking in forked processes for large files) and
``loading`` (the transactions).
"""

from __future__ import annotations

import csv
import gc
import os
from collections.abc import Callable, Generator, Iterator
from contextlib import closing, contextmanager
from typing import TYPE_CHECKING

from privacy_hub.db import transaction
from privacy_hub.importer.checking import CheckedRow, RowChecker
from privacy_hub.importer.loading import BatchLoader, ImportReport
from privacy_hub.importer.reading import ImportFileError, batches, parse_header, records
from privacy_hub.importer.workers import can_fork, checked_in_workers

if TYPE_CHECKING:
    from privacy_hub.hub import Hub

__all__ = ["ImportFileError", "ImportReport", "import_csv"]

# Files from this size on are checked and sealed by worker processes (see workers.py).
PARALLEL_FROM_BYTES = 1 << 20


def import_csv(hub: Hub, path: str | os.PathLike[str], *, batch_size: int = 1000,
               progress: Callable[[int], None] | None = None,
               parallel: bool | None = None, source: str | None = None) -> ImportReport:
    """Load a UTF-8 CSV of customers; bad rows are reported and never stop the import.

    Raises ImportFileError, before loading anything, when the header is unusable.
    ``progress`` gets the number of rows read after each committed batch. ``parallel``
    checks and seals in worker processes (default: for files over PARALLEL_FROM_BYTES).
    ``source`` names who the data came from when not from the subjects themselves (e.g.
    ``partner``): each customer loaded is then sent the Art. 14 notice (R-DEAD-05).
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    if parallel is None:
        parallel = os.path.getsize(path) >= PARALLEL_FROM_BYTES
    parallel = parallel and (os.cpu_count() or 1) > 1 and can_fork()
    loader = BatchLoader(hub, source=source)
    try:
        return _import(hub, path, loader, batch_size, progress, parallel)
    finally:
        if loader.tune_sqlite:
            # Drop the connections tuned for the load (pooled, idle now): later ones
            # start with SQLite's defaults again.
            hub.engine.dispose()


def _import(hub: Hub, path: str | os.PathLike[str], loader: BatchLoader, batch_size: int,
            progress: Callable[[int], None] | None, parallel: bool) -> ImportReport:
    read = 0
    # surrogateescape: a line that is not UTF-8 is rejected alone, not the whole file.
    with open(path, encoding="utf-8-sig", errors="surrogateescape", newline="") as fh, \
            _frozen_heap():
        reader = csv.reader(fh)
        columns = parse_header(next(reader, None))
        with transaction(hub.sessions) as session:  # loads the key workers will wrap under
            kek_version = hub.keyring.primary_version(session)
        checker = RowChecker(columns, hub.vault, hub.keyring, kek_version)
        pending = batches(records(reader), batch_size)
        checked: Generator[list[CheckedRow]] = (
            checked_in_workers(checker, pending) if parallel
            else (checker.check_all(batch) for batch in pending))
        with closing(checked):  # on an error, stop the workers at once
            for results in checked:
                loader.load(results)
                read += len(results)
                if progress:
                    progress(read)
    loader.report.rejected.sort(key=lambda item: item[0])
    return loader.report


@contextmanager
def _frozen_heap() -> Iterator[None]:
    # Measured: full collections walking the hub's long-lived objects took 15% of an
    # import. Frozen, the collector skips them (and a forked worker shares their pages).
    if gc.get_freeze_count():  # someone else (a pre-forking server) manages freezing
        yield
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()

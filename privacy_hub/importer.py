"""Bulk-load customers from a CRM export: ``privacy-hub import FILE``.

Each row is validated like an API body (CustomerCreateSchema, then the vault's
normalisation) and sealed as a new customer under a fresh key. Rows matching an existing
customer (external_id, else email, as Vault.upsert) are updated through upsert instead;
the new ones are inserted in bulk (privacy_hub.vault.bulk): per batch, one blind-index
query per identifier, one key insert and one customer insert (COPY on PostgreSQL), and
one audit entry per customer created. One transaction per batch, so a crash loses at most
the batch in flight. Reports never echo a cell: it may be personal data.

Checking and sealing need no I/O, and cost more CPU than the database work: for large
files, forked worker processes check and seal the next batches while this one loads.
"""

from __future__ import annotations

import csv
import gc
import multiprocessing
import os
from collections import deque
from collections.abc import Callable, Generator, Hashable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from itertools import islice
from typing import TYPE_CHECKING, Any, NamedTuple

import click
import marshmallow as ma

import audit
from audit.ids import new_id
from privacy_hub.db import transaction
from privacy_hub.schemas import CustomerCreateSchema
from privacy_hub.vault.bulk import insert_customers, store_data_keys
from privacy_hub.vault.cells import TABLE as CUSTOMERS
from privacy_hub.vault.errors import InvalidCustomerData, KeyMissing, VaultError
from privacy_hub.vault.models import Customer

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from privacy_hub.hub import Hub
    from privacy_hub.vault import KeyRing, Vault

IMPORT_ACTOR = audit.Actor("cli", "import")
FIELD_COLUMNS = ("external_id", "email", "phone", "first_name", "last_name", "birth_date",
                 "locale")
ADDRESS_COLUMNS = {f"address_{part}": part
                   for part in ("line1", "line2", "postal_code", "city", "country")}
ATTR_PREFIX = "attr."
MAX_ATTR_NAME = 64  # as CustomerFieldsSchema.attributes allows
IDENTIFIERS = ("external_id", "email")  # each belongs to one customer, so one row
# Fields that differ on every row; the others repeat and are validated once (_Checker._load)
UNIQUE_FIELDS = ("external_id", "email", "phone")
# Fields the schema validates in a method of its own (@validates), besides the field's
SCHEMA_VALIDATED = ("attributes",)
MAX_LOADED = 100_000
_MISSING = object()
# Files from this size on are checked and sealed by worker processes (see the top).
PARALLEL_FROM_BYTES = 1 << 20
WORKERS = 2
# Batches checked ahead of the loading: enough to keep the workers busy through a slow
# commit (an fsync on a busy disk), a few MB of memory.
AHEAD = 8
# SQLite settings for the loading connection (see _Loader._load)
BULK_CACHE_KIB = 65536
BULK_CHECKPOINT_PAGES = 10_000

_FIELD, _ADDRESS, _ATTR = range(3)
Columns = list[tuple[int, str]]
Record = tuple[int, list[str], str | None]  # first line, cells, why it cannot be read


class _Checked(NamedTuple):
    line: int
    errors: list[str]
    #: the normalised fields, when the row is valid
    data: dict[str, Any] | None = None
    #: a fresh key (wrapped) and the row sealed under it, should it be a new customer
    key_row: dict[str, object] | None = None
    sealed: dict[str, Any] | None = None


class ImportFileError(click.ClickException):
    """The file as a whole cannot be imported (no usable header); nothing was loaded.

    A ClickException, so ``privacy-hub import`` prints the message and exits 1.
    """


@dataclass
class ImportReport:
    created: int
    updated: int
    #: (1-based line in the file, messages) of each row not loaded, in file order
    rejected: list[tuple[int, list[str]]] = field(default_factory=list)


def import_csv(hub: Hub, path: str | os.PathLike[str], *, batch_size: int = 1000,
               progress: Callable[[int], None] | None = None,
               parallel: bool | None = None) -> ImportReport:
    """Load a UTF-8 CSV of customers; bad rows are reported and never stop the import.

    Raises ImportFileError, before loading anything, when the header is unusable.
    ``progress`` gets the number of rows read after each committed batch. ``parallel``
    checks and seals in worker processes (default: for files over PARALLEL_FROM_BYTES).
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    if parallel is None:
        parallel = os.path.getsize(path) >= PARALLEL_FROM_BYTES
    parallel = parallel and (os.cpu_count() or 1) > 1 and _can_fork()
    loader = _Loader(hub)
    try:
        return _import(hub, path, loader, batch_size, progress, parallel)
    finally:
        if loader.tune_sqlite:
            # Drop the connections tuned for the load (pooled, idle now): later ones
            # start with SQLite's defaults again.
            hub.engine.dispose()


def _import(hub: Hub, path: str | os.PathLike[str], loader: _Loader, batch_size: int,
            progress: Callable[[int], None] | None, parallel: bool) -> ImportReport:
    read = 0
    # surrogateescape: a line that is not UTF-8 is rejected alone, not the whole file.
    with open(path, encoding="utf-8-sig", errors="surrogateescape", newline="") as fh, \
            _frozen_heap():
        reader = csv.reader(fh)
        columns = _columns(next(reader, None))
        with transaction(hub.sessions) as session:  # loads the key workers will wrap under
            kek_version = hub.keyring.primary_version(session)
        checker = _Checker(columns, hub.vault, hub.keyring, kek_version)
        batches = _batches(_records(reader), batch_size)
        checked: Generator[list[_Checked]] = (
            _checked_in_worker(checker, batches) if parallel
            else (checker.check_all(batch) for batch in batches))
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


# -- reading -------------------------------------------------------------------------
def _columns(header: list[str] | None) -> Columns:
    """What each column holds; ImportFileError naming any column we do not know."""
    if not header or not any(h.strip() for h in header):
        raise ImportFileError("the file is empty: the first line must be a header row "
                              "naming the columns, e.g. external_id,email,first_name")
    names = [h.strip() for h in header]
    if any("@" in name for name in names):
        # Never echo it: a file without a header row starts with a customer's data.
        raise ImportFileError("the first line holds an email address, not column names: "
                              "add a header row, e.g. external_id,email,first_name")
    columns: Columns = []
    for number, name in enumerate(names, start=1):
        if name in FIELD_COLUMNS:
            columns.append((_FIELD, name))
        elif name in ADDRESS_COLUMNS:
            columns.append((_ADDRESS, ADDRESS_COLUMNS[name]))
        elif name.startswith(ATTR_PREFIX) and 0 < len(name) - len(ATTR_PREFIX) <= MAX_ATTR_NAME:
            columns.append((_ATTR, name[len(ATTR_PREFIX):]))
        else:
            raise ImportFileError(
                f"unknown column {name!r} (column {number}); the columns are "
                f"{', '.join((*FIELD_COLUMNS, *ADDRESS_COLUMNS))} and "
                f"{ATTR_PREFIX}<name> (1 to {MAX_ATTR_NAME} characters) for attributes")
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ImportFileError(f"column {duplicates[0]!r} appears more than once")
    if "email" not in names:
        raise ImportFileError("the file has no email column")
    return columns


def _records(reader: Any) -> Iterator[Record]:
    """Each non-blank record with the line it starts on (a quoted cell may span lines)."""
    last = reader.line_num
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:  # e.g. a cell over the csv module's field size limit
            yield last + 1, [], f"not readable as CSV ({exc})"
            last = reader.line_num
            continue
        line, last = last + 1, reader.line_num
        if any(cells):
            yield line, cells, None


def _batches(records: Iterable[Record], size: int) -> Iterator[list[Record]]:
    it = iter(records)
    while batch := list(islice(it, size)):
        yield batch


# -- validating ----------------------------------------------------------------------
class _Checker:
    """Validates rows and seals the valid ones as new customers; no I/O, so it can run
    in a worker process."""

    def __init__(self, columns: Columns, vault: Vault, keyring: KeyRing,
                 kek_version: int) -> None:
        self.columns = columns
        self.vault = vault
        self.keyring = keyring
        self.kek_version = kek_version
        self.schema = CustomerCreateSchema()
        #: (field, value) -> the value loaded (see _load)
        self._loaded: dict[tuple[str, Hashable], Any] = {}

    def _load(self, body: dict[str, Any]) -> dict[str, Any]:
        """``self.schema.load(body)``, each value that repeats across rows validated once.

        The schema validates each field on its own: a field's own validators, plus the
        schema's ``@validates`` methods of SCHEMA_VALIDATED (no schema-level validator,
        no hook: tests/integration/test_import_bulk.py checks that), so a body loads as
        its fields do one by one. Any error: the whole body is loaded again, so that the
        messages are exactly the schema's.
        """
        fields, loaded = self.schema.fields, self._loaded
        data: dict[str, Any] = {}
        try:
            for name, value in body.items():
                if name in UNIQUE_FIELDS:  # different on every row: not worth keeping
                    data[name] = fields[name].deserialize(value)
                    continue
                key = (name, tuple(value.items()) if isinstance(value, dict) else value)
                out = loaded.get(key, _MISSING)
                if out is _MISSING:
                    out = (self.schema.load({name: value})[name] if name in SCHEMA_VALIDATED
                           else fields[name].deserialize(value))
                    if len(loaded) >= MAX_LOADED:
                        loaded.clear()
                    loaded[key] = out
                data[name] = out
        except ma.ValidationError:
            data = self.schema.load(body)  # raises, with every field's messages
        return data

    def check_all(self, records: list[Record]) -> list[_Checked]:
        checked = [self.check(*record) for record in records]
        valid = [i for i, c in enumerate(checked) if _may_be_new(c)]
        try:
            keys, key_rows = self.keyring.prepare_data_keys(self.kek_version,
                                                            [new_id() for _ in valid])
        except KeyMissing:  # retired by a rotation since the import began
            return checked  # the loader seals them under the new key
        for i, key, key_row in zip(valid, keys, key_rows, strict=True):
            sealed = self.vault.seal_new(key, checked[i].data or {})
            checked[i] = checked[i]._replace(key_row=key_row, sealed=sealed)
        return checked

    def check(self, line: int, cells: list[str], problem: str | None) -> _Checked:
        if problem is not None:
            return _Checked(line, [problem])
        if len(cells) != len(self.columns):
            return _Checked(line, [f"has {len(cells)} cells, the header has {len(self.columns)}"])
        body: dict[str, Any] = {}
        address: dict[str, str] = {}
        attributes: dict[str, str] = {}
        for (kind, key), cell in zip(self.columns, cells, strict=True):
            value = cell.strip()
            if not value:
                continue
            if not value.isascii() and not _is_utf8(value):
                return _Checked(line, [f"{_column(kind, key)}: not valid UTF-8 "
                                       "(save the file as UTF-8)"])
            if kind == _FIELD:
                body[key] = value
            elif kind == _ADDRESS:
                address[key] = value
            else:
                attributes[key] = value
        if address:
            body["address"] = address
        if attributes:
            body["attributes"] = attributes

        errors: dict[str, list[str]] = {}
        data: dict[str, Any] = {}
        identifiers: dict[str, Any] = {}
        try:
            data = self._load(body)
        except ma.ValidationError as exc:
            _flatten(exc.messages, (), errors)
        try:
            identifiers = self.vault.normalise(body)
        except InvalidCustomerData as exc:
            _flatten(exc.errors, (), errors)
        if errors:
            return _Checked(line, _messages(errors, cells))
        for name in ("email", "phone", "external_id"):
            if name in identifiers:
                data[name] = identifiers[name]
        return _Checked(line, [], data)


def _may_be_new(row: _Checked) -> bool:
    # Without an email a row can only update a customer.
    return bool(row.data and row.data.get("email"))


def _is_utf8(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates: bytes that were not UTF-8
        return False
    return True


def _column(kind: int, key: str) -> str:
    return {_FIELD: key, _ADDRESS: f"address_{key}", _ATTR: f"{ATTR_PREFIX}{key}"}[kind]


def _flatten(messages: Any, path: tuple[str, ...], out: dict[str, list[str]]) -> None:
    """Marshmallow's nested messages keyed by the file's column names."""
    if isinstance(messages, dict):
        for key, value in messages.items():
            _flatten(value, (*path, str(key)), out)
        return
    if path[:1] == ("address",) and len(path) > 1:
        column = f"address_{path[1]}"
    elif path[:1] == ("attributes",) and len(path) > 1:
        column = f"{ATTR_PREFIX}{path[1]}"
    elif not path or path[0] == "_schema":
        column = "row"
    else:
        column = path[0]
    bucket = out.setdefault(column, [])
    for message in messages if isinstance(messages, list) else [messages]:
        if str(message) not in bucket:
            bucket.append(str(message))


def _messages(errors: dict[str, list[str]], cells: list[str]) -> list[str]:
    # Our validators never quote the input; this keeps a future one from leaking a cell.
    values = [c.strip() for c in cells if len(c.strip()) >= 3]
    return [f"{column}: {message}" if not any(v in message for v in values)
            else f"{column}: not valid"
            for column, messages in errors.items() for message in messages]


# -- validating in a worker process ----------------------------------------------------
_worker_checker: _Checker | None = None


def _can_fork() -> bool:
    return "fork" in multiprocessing.get_all_start_methods()


def _start_worker(checker: _Checker) -> None:
    global _worker_checker  # one checker per worker process
    _worker_checker = checker


def _check_in_worker(records: list[Record]) -> list[_Checked]:
    if _worker_checker is None:
        raise RuntimeError("_start_worker did not run in this process")
    return _worker_checker.check_all(records)


def _checked_in_worker(checker: _Checker, batches: Iterator[list[Record]]
                       ) -> Generator[list[_Checked]]:
    """Batches checked and sealed by worker processes, in order, ahead of the loading.

    Forked, so the checker and the keys it wraps under are inherited, never pickled,
    and no data key leaves a worker unwrapped. Workers never touch the database
    connections they inherit (psycopg does not close them in a child process).
    """
    pool = ProcessPoolExecutor(WORKERS, mp_context=multiprocessing.get_context("fork"),
                               initializer=_start_worker, initargs=(checker,))
    pending: deque[Future[list[_Checked]]] = deque()
    try:
        for batch in batches:
            pending.append(pool.submit(_check_in_worker, batch))
            if len(pending) > AHEAD:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        pool.shutdown(cancel_futures=True)


# -- loading -------------------------------------------------------------------------
class _Loader:
    """Loads checked batches, one transaction each, and keeps the report."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.report = ImportReport(0, 0, [])
        self.seen: dict[str, dict[str, int]] = {name: {} for name in IDENTIFIERS}
        #: customers this import created; no later row can match them (see _claim)
        self.created_ids: set[str] = set()
        # With the key store in another database, one session commits the two databases
        # in no fixed order: commit new keys first, so a crash can leave an unused key
        # behind but never a customer without one.
        self.keys_first = hub.keystore_engine is not hub.engine
        self.tune_sqlite = hub.engine.dialect.name == "sqlite"

    def load(self, checked: list[_Checked]) -> None:
        rows: list[_Checked] = []
        for row in checked:
            errors = row.errors if row.data is None else self._claim(row.line, row.data)
            if errors:
                self.report.rejected.append((row.line, errors))
            else:
                rows.append(row)
        if rows:
            self._load(rows)

    def _claim(self, line: int, data: Mapping[str, Any]) -> list[str]:
        """Reject a row repeating an earlier row's email or external_id; else remember it."""
        claims = [(name, data[name]) for name in IDENTIFIERS if name in data]
        clashes = [f"{name}: same as line {self.seen[name][value]}"
                   for name, value in claims if value in self.seen[name]]
        if not clashes:
            for name, value in claims:
                self.seen[name][value] = line
        return clashes

    def _load(self, rows: list[_Checked]) -> None:
        hub, vault = self.hub, self.hub.vault
        if self.keys_first:
            with transaction(hub.sessions) as session:
                rows = self._sealed(session, rows)
        created = updated = 0
        rejected: list[tuple[int, list[str]]] = []
        with transaction(hub.sessions) as session:
            if self.tune_sqlite:
                conn = session.connection(bind_arguments={"mapper": Customer})
                # A bulk load rewrites index pages all over the file: a larger page cache
                # reads them again less, and checkpointing every 10,000 pages instead of
                # 1,000 copies (and syncs) each page once for several batches, not each
                # time. import_csv puts both back when it ends.
                conn.exec_driver_sql(f"PRAGMA cache_size=-{BULK_CACHE_KIB}")
                conn.exec_driver_sql(f"PRAGMA wal_autocheckpoint={BULK_CHECKPOINT_PAGES}")
            wanted = {name: [r.data[name] for r in rows if r.data and name in r.data]
                      for name in IDENTIFIERS}
            # The sealed rows carry their blind indexes: not computed a second time.
            indexes = {(name, r.data[name]): r.sealed[f"{name}_bidx"]
                       for r in rows if r.data and r.sealed
                       for name in IDENTIFIERS if name in r.data}
            for name in IDENTIFIERS:  # external_id first: upsert's order
                vault.lock_identifiers(session, name, wanted[name], indexes=indexes)
            existing = self._existing(session, wanted, indexes)
            new: list[_Checked] = []
            for row in rows:
                data = row.data or {}
                if any(data.get(name) in existing[name] for name in IDENTIFIERS):
                    if self.keys_first and row.sealed:  # its stored key stays unused
                        hub.keyring.destroy_data_key(session, row.sealed["id"])
                    try:
                        _, was_created = vault.upsert(session, data, actor=IMPORT_ACTOR)
                    except VaultError as exc:
                        rejected.append((row.line, _vault_error(exc)))
                        continue
                    created += was_created
                    updated += not was_created
                elif _may_be_new(row):
                    new.append(row)
                else:
                    rejected.append((row.line, ["email: required for a new customer "
                                                "(no customer has this external_id)"]))
            if not self.keys_first:
                new = self._sealed(session, new)
            ids = insert_customers(session, [r.sealed for r in new if r.sealed],
                                   actor=IMPORT_ACTOR, details={"source": "import"})
        self.created_ids.update(ids)
        self.report.created += created + len(ids)
        self.report.updated += updated
        self.report.rejected.extend(rejected)

    def _existing(self, session: Session, wanted: Mapping[str, list[str]],
                  indexes: Mapping[tuple[str, str], bytes]) -> dict[str, dict[str, str]]:
        """Vault.existing_identifiers, asked only about the values it could find.

        That is the values whose blind index some customer has who was not created by
        this import, or was changed since: found with one query per identifier that
        reads no ciphertext (the index is truncated: at 10^5 customers, most values of
        a batch have candidates, nearly all of them customers this import created).
        """
        vault = self.hub.vault
        conn = session.connection(bind_arguments={"mapper": Customer})
        query = _INDEX_QUERIES.get(conn.dialect.paramstyle)
        if query is None:  # a driver we have no raw query for
            return vault.existing_identifiers(session, wanted, indexes=indexes,
                                              skip_created=self.created_ids)
        sought: dict[str, list[str]] = {}
        for name, values in wanted.items():
            by_index: dict[bytes, list[str]] = {}
            for value in values:
                bidx = indexes.get((name, value)) or vault.indexer.index(
                    f"{CUSTOMERS}.{name}", value)
                by_index.setdefault(bidx, []).append(value)
            matched: set[bytes] = set()
            todo = list(by_index)
            for start in range(0, len(todo), INDEX_CHUNK):
                chunk = todo[start:start + INDEX_CHUNK]
                sql, params = query(f"{name}_bidx", chunk)
                matched.update(
                    bytes(bidx) for bidx, customer_id, unchanged
                    in conn.exec_driver_sql(sql, params)
                    if not (unchanged and customer_id in self.created_ids))
            sought[name] = [value for bidx in matched for value in by_index[bidx]]
        if not any(sought.values()):
            return {name: {} for name in wanted}
        return vault.existing_identifiers(session, sought, indexes=indexes,
                                          skip_created=self.created_ids)

    def _sealed(self, session: Session, rows: list[_Checked]) -> list[_Checked]:
        """The rows, those that may be new sealed under fresh keys now stored.

        The checker's keys are stored as they are, unless a key rotation has happened
        since: then those rows are sealed again, under keys wrapped by the new version.
        """
        keyring, out = self.hub.keyring, list(rows)
        todo = [i for i, row in enumerate(rows) if _may_be_new(row)]
        key_rows = [kr for i in todo if (kr := rows[i].key_row) is not None]
        if len(key_rows) == len(todo) and store_data_keys(session, keyring, key_rows):
            return out
        keys = keyring.new_data_keys(session, [new_id() for _ in todo])
        for i, key in zip(todo, keys.values(), strict=True):
            out[i] = out[i]._replace(key_row=None,
                                     sealed=self.hub.vault.seal_new(key, out[i].data or {}))
        return out


def _qmark_query(column: str, values: list[bytes]) -> tuple[str, tuple[bytes, ...]]:
    marks = ",".join("?" * len(values))
    return _INDEX_SQL.format(column=column, where=f"IN ({marks})"), tuple(values)


def _pyformat_query(column: str, values: list[bytes]) -> tuple[str, dict[str, object]]:
    return _INDEX_SQL.format(column=column, where="= ANY(%(values)s)"), {"values": values}


# The column is one of the vault's blind-index columns; the values are bound parameters.
_INDEX_SQL = "SELECT {column}, id, updated_at = created_at FROM customers WHERE {column} {where}"
# Blind index -> (the index, customer id, unchanged since created) rows, by paramstyle
# (sqlite3: qmark; psycopg: pyformat)
_INDEX_QUERIES: dict[str, Callable[[str, list[bytes]], tuple[str, Any]]] = {
    "qmark": _qmark_query, "pyformat": _pyformat_query}
INDEX_CHUNK = 900  # SQLite before 3.32 takes at most 999 parameters


def _vault_error(exc: VaultError) -> list[str]:
    if isinstance(exc, InvalidCustomerData):
        errors: dict[str, list[str]] = {}
        _flatten(exc.errors, (), errors)
        return [f"{column}: {m}" for column, messages in errors.items() for m in messages]
    name = getattr(exc, "field", None)
    return [f"{name}: {exc}" if name else str(exc)]

"""Bulk-load customers from a CRM export: ``privacy-hub import FILE``.

Each row is validated like an API body (CustomerCreateSchema, then the vault's
normalisation). Rows matching an existing customer (external_id, else email) go through
Vault.upsert; new customers take a bulk path: one candidate query, one key insert and
one customer insert per batch. One transaction per batch, so a crash loses at most the
batch in flight. Reports never echo a cell: it may be personal data.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from os import PathLike
from typing import TYPE_CHECKING, Any

import click
import marshmallow as ma

import audit
from audit.db import new_id
from privacy_hub.api.schemas import CustomerCreateSchema
from privacy_hub.db import transaction
from privacy_hub.vault.errors import InvalidCustomerData, VaultError
from privacy_hub.vault.keystore import DataKey

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from privacy_hub.hub import Hub

IMPORT_ACTOR = audit.Actor("cli", "import")
FIELD_COLUMNS = ("external_id", "email", "phone", "first_name", "last_name", "birth_date",
                 "locale")
ADDRESS_COLUMNS = {f"address_{part}": part
                   for part in ("line1", "line2", "postal_code", "city", "country")}
ATTR_PREFIX = "attr."
MAX_ATTR_NAME = 64  # as CustomerFieldsSchema.attributes allows
IDENTIFIERS = ("external_id", "email")  # unique per customer, so unique per file

_FIELD, _ADDRESS, _ATTR = range(3)


class ImportFileError(click.ClickException):
    """The file as a whole cannot be imported (header, not CSV); nothing was loaded.

    A ClickException, so ``privacy-hub import`` shows the message and exits 1.
    """


@dataclass
class ImportReport:
    created: int
    updated: int
    #: (1-based line in the file, messages) of each row not loaded, in file order
    rejected: list[tuple[int, list[str]]] = field(default_factory=list)


@dataclass
class _Row:
    line: int
    data: dict[str, Any]


def import_csv(hub: Hub, path: str | PathLike[str], *, batch_size: int = 1000,
               progress: Callable[[int], None] | None = None) -> ImportReport:
    """Load a UTF-8 CSV of customers; bad rows are reported, never stop the import.

    Raises ImportFileError before loading anything when the header is unusable.
    ``progress`` gets the number of rows read after each committed batch.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    report = ImportReport(0, 0, [])
    validator = _Validator(hub)
    # surrogateescape: a line that is not UTF-8 is rejected alone, not the whole file.
    with open(path, encoding="utf-8-sig", errors="surrogateescape", newline="") as fh:
        reader = csv.reader(fh)
        columns = _columns(next(reader, None))
        batch: list[_Row] = []
        read = 0
        for line, cells, problem in _records(reader):
            read += 1
            if problem is None:
                row, errors = validator.check(line, columns, cells)
                if row is not None:
                    batch.append(row)
                else:
                    report.rejected.append((line, errors))
            else:
                report.rejected.append((line, [problem]))
            if read % batch_size == 0:
                _load_batch(hub, batch, report)
                batch = []
                if progress:
                    progress(read)
        if read % batch_size:
            _load_batch(hub, batch, report)
            if progress:
                progress(read)
    report.rejected.sort(key=lambda item: item[0])
    return report


# -- reading -------------------------------------------------------------------------
def _columns(header: list[str] | None) -> list[tuple[int, str]]:
    """What each column holds; ImportFileError naming any column we do not know."""
    if not header or not any(h.strip() for h in header):
        raise ImportFileError("the file is empty: the first line must be a header row "
                              "naming the columns, e.g. external_id,email,first_name")
    names = [h.strip() for h in header]
    if any("@" in name for name in names):
        # Never echo it: a file without a header row starts with a customer's data.
        raise ImportFileError("the first line holds an email address, not column names: "
                              "add a header row, e.g. external_id,email,first_name")
    columns: list[tuple[int, str]] = []
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


def _records(reader: Any) -> Iterator[tuple[int, list[str], str | None]]:
    """(first line of the record, cells, problem) for each non-blank record."""
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


# -- validating ----------------------------------------------------------------------
class _Validator:
    """Builds the API body of a row, validates it and de-duplicates identifiers."""

    def __init__(self, hub: Hub) -> None:
        self.vault = hub.vault
        self.schema = CustomerCreateSchema()
        self.seen: dict[tuple[str, str], int] = {}

    def check(self, line: int, columns: list[tuple[int, str]], cells: list[str]
              ) -> tuple[_Row | None, list[str]]:
        if len(cells) != len(columns):
            return None, [f"has {len(cells)} cells, the header has {len(columns)}"]
        body: dict[str, Any] = {}
        address: dict[str, str] = {}
        attributes: dict[str, str] = {}
        for (kind, key), cell in zip(columns, cells, strict=True):
            value = cell.strip()
            if not value:
                continue
            if not value.isascii() and not _is_utf8(value):
                return None, [f"{_column(kind, key)}: not valid UTF-8 (save the file as UTF-8)"]
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
        try:
            data = self.schema.load(body)
        except ma.ValidationError as exc:
            _flatten(exc.messages, (), errors)
        try:
            identifiers = self.vault.normalise(body)
        except InvalidCustomerData as exc:
            _flatten(exc.errors, (), errors)
        if errors:
            return None, _messages(errors, cells)
        for name in ("email", "phone", "external_id"):
            if name in identifiers:
                data[name] = identifiers[name]
        keys = [(name, data[name]) for name in IDENTIFIERS if name in data]
        clashes = [f"{name}: same as line {self.seen[(name, value)]}"
                   for name, value in keys if (name, value) in self.seen]
        if clashes:
            return None, clashes
        self.seen.update((key, line) for key in keys)
        return _Row(line, data), []


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
    elif path[:1] == ("_schema",):
        column = "row"
    else:
        column = path[0] if path else "row"
    items = messages if isinstance(messages, list) else [messages]
    bucket = out.setdefault(column, [])
    bucket.extend(str(m) for m in items if str(m) not in bucket)


def _messages(errors: dict[str, list[str]], cells: Sequence[str]) -> list[str]:
    # Our validators never quote the input; this keeps a future one from leaking a cell.
    values = [c.strip() for c in cells if len(c.strip()) >= 3]
    return [f"{column}: {message}" if not any(v in message for v in values)
            else f"{column}: not valid"
            for column, messages in errors.items() for message in messages]


# -- loading -------------------------------------------------------------------------
def _load_batch(hub: Hub, rows: list[_Row], report: ImportReport) -> None:
    """One transaction: update the rows that match a customer, bulk-create the rest."""
    if not rows:
        return
    vault = hub.vault
    # With the key store in another database, one session commits the two databases
    # in no fixed order: commit the new keys first, so a crash can leave an unused
    # key behind but never a customer without one.
    separate = hub.keystore_engine is not hub.engine
    spare_keys = _new_keys_apart(hub, len(rows)) if separate else []
    created = updated = 0
    rejected: list[tuple[int, list[str]]] = []
    with transaction(hub.sessions) as session:
        wanted = {name: [r.data[name] for r in rows if name in r.data] for name in IDENTIFIERS}
        for name in IDENTIFIERS:  # external_id first: upsert's order
            vault.lock_identifiers(session, name, wanted[name])
        existing = vault.existing_identifiers(session, wanted)
        new: list[_Row] = []
        for row in rows:
            if any(row.data.get(n) in existing[n] for n in IDENTIFIERS):
                try:
                    _, was_created = vault.upsert(session, row.data, actor=IMPORT_ACTOR)
                except VaultError as exc:
                    rejected.append((row.line, _vault_error(exc)))
                    continue
                created += was_created
                updated += not was_created
            elif "email" not in row.data:
                rejected.append((row.line, ["email: required for a new customer "
                                            "(no customer has this external_id)"]))
            else:
                new.append(row)
        keys = _take_keys(hub, session, spare_keys, len(new), separate)
        vault.create_many(session, [(key, row.data) for key, row in zip(keys, new, strict=True)],
                          actor=IMPORT_ACTOR, details={"source": "import"})
        created += len(new)
    report.created += created
    report.updated += updated
    report.rejected.extend(rejected)


def _new_keys_apart(hub: Hub, count: int) -> list[DataKey]:
    with transaction(hub.sessions) as session:
        return list(hub.keyring.new_data_keys(session, [new_id() for _ in range(count)]).values())


def _take_keys(hub: Hub, session: Session, spare: list[DataKey], count: int,
               separate: bool) -> list[DataKey]:
    if not separate:
        return list(hub.keyring.new_data_keys(session, [new_id() for _ in range(count)]).values())
    for unused in spare[count:]:
        hub.keyring.destroy_data_key(session, unused.customer_id)
    return spare[:count]


def _vault_error(exc: VaultError) -> list[str]:
    if isinstance(exc, InvalidCustomerData):
        errors: dict[str, list[str]] = {}
        _flatten(exc.errors, (), errors)
        return [f"{column}: {m}" for column, messages in errors.items() for m in messages]
    name = getattr(exc, "field", None)
    return [f"{name}: {exc}" if name else str(exc)]

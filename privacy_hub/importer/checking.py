"""Checking rows: each row validated like an API body (CustomerCreateSchema, then the
vault's normalisation) and, if valid, sealed as a new customer under a fresh key.

No I/O, so a RowChecker can run in a worker process (privacy_hub/importer/workers.py).
Messages never quote a cell: it may be personal data.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import TYPE_CHECKING, Any, NamedTuple

import marshmallow as ma

from audit.ids import new_id
from privacy_hub.importer.reading import ADDRESS, ATTR_PREFIX, FIELD, Columns, Record, column_name
from privacy_hub.schemas import CustomerCreateSchema
from privacy_hub.vault.errors import InvalidCustomerData, KeyMissing, VaultError

if TYPE_CHECKING:
    from privacy_hub.vault import KeyRing, Vault

# Fields that differ on every row; the others repeat and are validated once (RowChecker._load)
UNIQUE_FIELDS = ("external_id", "email", "phone")
# Fields the schema validates in a method of its own (@validates), besides the field's
SCHEMA_VALIDATED = ("attributes",)
MAX_LOADED = 100_000
_MISSING = object()


class CheckedRow(NamedTuple):
    """A row checked (and, if it may be a new customer, sealed)."""

    line: int
    errors: list[str]
    #: the normalised fields, when the row is valid
    data: dict[str, Any] | None = None
    #: a fresh key (wrapped) and the row sealed under it, should it be a new customer
    key_row: dict[str, object] | None = None
    sealed: dict[str, Any] | None = None


class RowChecker:
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

    def check_all(self, records: list[Record]) -> list[CheckedRow]:
        """Check a batch, and seal the rows that may be new under fresh data keys."""
        checked = [self.check(*record) for record in records]
        valid = [i for i, c in enumerate(checked) if may_be_new(c)]
        try:
            keys, key_rows = self.keyring.prepare_data_keys(self.kek_version,
                                                            [new_id() for _ in valid])
        except KeyMissing:  # retired by a rotation since the import began
            return checked  # the loader seals them under the new key
        for i, key, key_row in zip(valid, keys, key_rows, strict=True):
            sealed = self.vault.seal_new(key, checked[i].data or {})
            checked[i] = checked[i]._replace(key_row=key_row, sealed=sealed)
        return checked

    def check(self, line: int, cells: list[str], problem: str | None) -> CheckedRow:
        """Check one record: its normalised fields, or its errors by column."""
        if problem is not None:
            return CheckedRow(line, [problem])
        if len(cells) != len(self.columns):
            return CheckedRow(line, [f"has {len(cells)} cells, the header has {len(self.columns)}"])
        body: dict[str, Any] = {}
        address: dict[str, str] = {}
        attributes: dict[str, str] = {}
        for (kind, key), cell in zip(self.columns, cells, strict=True):
            value = cell.strip()
            if not value:
                continue
            if not value.isascii() and not _is_utf8(value):
                return CheckedRow(line, [f"{column_name(kind, key)}: not valid UTF-8 "
                                         "(save the file as UTF-8)"])
            if kind == FIELD:
                body[key] = value
            elif kind == ADDRESS:
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
            flatten(exc.messages, (), errors)
        try:
            identifiers = self.vault.normalise(body)
        except InvalidCustomerData as exc:
            flatten(exc.errors, (), errors)
        if errors:
            return CheckedRow(line, _messages(errors, cells))
        for name in ("email", "phone", "external_id"):
            if name in identifiers:
                data[name] = identifiers[name]
        return CheckedRow(line, [], data)


def may_be_new(row: CheckedRow) -> bool:
    """Whether the row may become a new customer."""
    # Without an email a row can only update a customer.
    return bool(row.data and row.data.get("email"))


def _is_utf8(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates: bytes that were not UTF-8
        return False
    return True


def flatten(messages: Any, path: tuple[str, ...], out: dict[str, list[str]]) -> None:
    """Marshmallow's nested messages keyed by the file's column names."""
    if isinstance(messages, dict):
        for key, value in messages.items():
            flatten(value, (*path, str(key)), out)
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


def vault_error_messages(exc: VaultError) -> list[str]:
    """A vault error on a row as the import reports it, by column."""
    if isinstance(exc, InvalidCustomerData):
        errors: dict[str, list[str]] = {}
        flatten(exc.errors, (), errors)
        return [f"{column}: {m}" for column, messages in errors.items() for m in messages]
    name = getattr(exc, "field", None)
    return [f"{name}: {exc}" if name else str(exc)]

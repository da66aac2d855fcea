"""Reading a CRM export: the header row's columns, the records and their lines, batches."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from itertools import islice
from typing import Any

import click

FIELD_COLUMNS = ("external_id", "email", "phone", "first_name", "last_name", "birth_date",
                 "locale")
ADDRESS_COLUMNS = {f"address_{part}": part
                   for part in ("line1", "line2", "postal_code", "city", "country")}
ATTR_PREFIX = "attr."
MAX_ATTR_NAME = 64  # as CustomerFieldsSchema.attributes allows

#: what a column holds: a customer field, a part of the address, an attribute
FIELD, ADDRESS, ATTRIBUTE = range(3)
Columns = list[tuple[int, str]]
Record = tuple[int, list[str], str | None]  # first line, cells, why it cannot be read


class ImportFileError(click.ClickException):
    """The file as a whole cannot be imported (no usable header); nothing was loaded.

    A ClickException, so ``privacy-hub import`` prints the message and exits 1.
    """


def parse_header(header: list[str] | None) -> Columns:
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
            columns.append((FIELD, name))
        elif name in ADDRESS_COLUMNS:
            columns.append((ADDRESS, ADDRESS_COLUMNS[name]))
        elif name.startswith(ATTR_PREFIX) and 0 < len(name) - len(ATTR_PREFIX) <= MAX_ATTR_NAME:
            columns.append((ATTRIBUTE, name[len(ATTR_PREFIX):]))
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


def column_name(kind: int, key: str) -> str:
    """The header name of a column parse_header read as (kind, key)."""
    return {FIELD: key, ADDRESS: f"address_{key}", ATTRIBUTE: f"{ATTR_PREFIX}{key}"}[kind]


def records(reader: Any) -> Iterator[Record]:
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


def batches(items: Iterable[Record], size: int) -> Iterator[list[Record]]:
    """``items`` in lists of ``size`` (the last one shorter)."""
    it = iter(items)
    while batch := list(islice(it, size)):
        yield batch

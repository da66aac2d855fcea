"""A customer's fields as the vault stores them, without any I/O: normalised
identifiers, encoded values, sealed cells and blind indexes."""

from __future__ import annotations

import json
import zlib
from collections.abc import Mapping
from typing import Any

from privacy_hub.vault.blind_index import (
    BlindIndexer,
    NormalisationError,
    normalise_email,
    normalise_external_id,
    normalise_phone,
)
from privacy_hub.vault.errors import InvalidCustomerData
from privacy_hub.vault.keyring import DataKey
from privacy_hub.vault.models import INDEXED_FIELDS, JSON_FIELDS, PERSONAL_FIELDS

TABLE = "customers"


def encode_value(name: str, value: Any) -> bytes:
    """The plaintext bytes a field is sealed as (JSON for structured fields)."""
    if name in JSON_FIELDS:
        return json.dumps(value, sort_keys=True, separators=(",", ":"),
                          ensure_ascii=False).encode()
    return str(value).encode("utf-8")


def decode_value(name: str, raw: bytes) -> Any:
    """encode_value's inverse."""
    if name in JSON_FIELDS:
        return json.loads(raw)
    return raw.decode("utf-8")


def normalise(fields: Mapping[str, Any]) -> dict[str, Any]:
    """Normalise identifiers; raise InvalidCustomerData naming each bad field."""
    out = dict(fields)
    errors: dict[str, list[str]] = {}
    region = None
    address = out.get("address")
    if isinstance(address, Mapping):
        region = address.get("country")
    for name, fn in (("email", normalise_email), ("external_id", normalise_external_id)):
        if out.get(name) is not None:
            try:
                out[name] = fn(out[name])
            except NormalisationError as exc:
                errors[name] = [str(exc)]
    if out.get("phone") is not None:
        try:
            out["phone"] = normalise_phone(out["phone"], region)
        except NormalisationError as exc:
            errors["phone"] = [str(exc)]
    if errors:
        raise InvalidCustomerData(errors)
    return out


def blind_index(indexer: BlindIndexer, name: str, value: str) -> bytes:
    """The blind index of an identifier (normalised) of a customer."""
    return indexer.index(f"{TABLE}.{name}", value)


def identifier_lock_id(name: str, bidx: bytes) -> int:
    """The advisory lock (PostgreSQL) that serialises writers of one identifier value."""
    return zlib.crc32(name.encode() + b"|" + bidx)


def seal_new(indexer: BlindIndexer, key: DataKey, data: Mapping[str, Any]) -> dict[str, Any]:
    """The sealed columns and blind indexes of a new customer.

    ``data`` is normalised (normalise); ``key`` is the customer's fresh key.
    """
    if not data.get("email"):
        raise InvalidCustomerData({"email": ["Missing data for required field."]})
    cid = key.customer_id
    row: dict[str, Any] = {"id": cid, "key_version": key.version}
    row.update(key.seal_row(TABLE, cid, {
        f"{name}_ct": encode_value(name, value)
        for name in PERSONAL_FIELDS if (value := data.get(name)) is not None}))
    for name in PERSONAL_FIELDS:
        row.setdefault(f"{name}_ct", None)
    for name in INDEXED_FIELDS:
        value = data.get(name)
        row[f"{name}_bidx"] = None if value is None else blind_index(indexer, name, value)
    return row


def as_read_back(data: Mapping[str, Any]) -> dict[str, Any]:
    """What the profile would decrypt from cells sealed from ``data``, without decrypting."""
    return {name: None if (value := data.get(name)) is None
            else decode_value(name, encode_value(name, value))
            for name in PERSONAL_FIELDS}

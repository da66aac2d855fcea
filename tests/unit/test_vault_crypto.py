"""The ciphertext format, its associated data, and blind-index normalisation (no database)."""

from __future__ import annotations

import os
import struct

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import given
from hypothesis import strategies as st

from privacy_hub.vault import crypto
from privacy_hub.vault.blind_index import (
    BlindIndexer,
    NormalisationError,
    normalise_email,
    normalise_phone,
)
from privacy_hub.vault.errors import DecryptionError

KEY = AESGCM(bytes(range(32)))
CELL = {"table": "customers", "column": "email_ct", "row_id": "r1", "customer_id": "c1"}


def test_format_is_version_keyversion_nonce_ciphertext_tag() -> None:
    blob = crypto.seal(KEY, 7, b"hello", **CELL)
    assert blob[0] == 1
    assert struct.unpack(">I", blob[1:5])[0] == 7
    assert len(blob) == 1 + 4 + 12 + len(b"hello") + 16
    assert crypto.open_(KEY, blob, **CELL) == b"hello"


def test_associated_data_is_length_prefixed_and_unambiguous() -> None:
    """Moving a byte between adjacent components must change the AAD."""
    a = crypto.field_aad(1, "ab", "c", "r", "x")
    b = crypto.field_aad(1, "a", "bc", "r", "x")
    assert a != b
    assert a == b"\x01" + b"\x00\x00\x00\x01" + b"\x00\x02ab" + b"\x00\x01c" + b"\x00\x01r" + b"\x00\x01x"


@pytest.mark.parametrize("field", ["table", "column", "row_id", "customer_id"])
def test_ciphertext_moved_to_another_cell_fails_to_decrypt(field: str) -> None:
    blob = crypto.seal(KEY, 1, b"secret", **CELL)
    with pytest.raises(DecryptionError, match="does not authenticate"):
        crypto.open_(KEY, blob, **{**CELL, field: "other"})


def test_relabelled_key_version_fails_to_decrypt() -> None:
    """The header is authenticated: changing the key version byte breaks the tag."""
    blob = bytearray(crypto.seal(KEY, 1, b"secret", **CELL))
    blob[4] = 2
    with pytest.raises(DecryptionError):
        crypto.open_(KEY, bytes(blob), **CELL)


def test_truncated_or_foreign_blob_is_a_clear_error() -> None:
    with pytest.raises(DecryptionError, match="not a vault ciphertext"):
        crypto.open_(KEY, b"\x02" + os.urandom(40), **CELL)
    with pytest.raises(DecryptionError, match="not a vault ciphertext"):
        crypto.open_(KEY, b"\x01abc", **CELL)


@given(st.binary(max_size=2048))
def test_seal_open_round_trips_any_value(value: bytes) -> None:
    assert crypto.open_(KEY, crypto.seal(KEY, 3, value, **CELL), **CELL) == value


def test_every_seal_uses_a_fresh_nonce() -> None:
    nonces = {crypto.seal(KEY, 1, b"x", **CELL)[5:17] for _ in range(200)}
    assert len(nonces) == 200


def test_wrapped_key_is_bound_to_its_associated_data() -> None:
    wrapped = crypto.wrap(KEY, b"k" * 32, b"customer-1")
    assert crypto.unwrap(KEY, wrapped, b"customer-1") == b"k" * 32
    with pytest.raises(DecryptionError):
        crypto.unwrap(KEY, wrapped, b"customer-2")


def test_email_normalisation_nfkc_trim_lowercase() -> None:
    assert normalise_email("  Ada.Lovelace@EXAMPLE.org ") == "ada.lovelace@example.org"
    full_width_joe = "\uff4a\uff4f\uff45@example.com"
    assert normalise_email(full_width_joe) == "joe@example.com"  # NFKC folds full-width letters
    for bad in ("", "no-at-sign", "a@b", "a@@b.c", "a b@c.de"):
        with pytest.raises(NormalisationError):
            normalise_email(bad)


def test_phone_normalisation_to_e164() -> None:
    assert normalise_phone("+49 151 12345678") == "+4915112345678"
    assert normalise_phone("0151 12345678", "DE") == "+4915112345678"
    with pytest.raises(NormalisationError, match="international format"):
        normalise_phone("0151 12345678")


def test_blind_index_is_keyed_per_column_and_truncated() -> None:
    indexer = BlindIndexer(b"i" * 32, bits=16)
    email = indexer.index("customers.email", "a@b.de")
    assert len(email) == 2
    assert indexer.index("customers.email", "a@b.de") == email
    other_key = {BlindIndexer(bytes([k]) * 32, bits=16).index("customers.email", "a@b.de") for k in range(20)}
    assert len(other_key) > 15  # a different index key gives unrelated values
    # The same value under another column uses another key.
    values = {indexer.index(f"customers.c{i}", "a@b.de") for i in range(50)}
    assert len(values) > 40


def test_blind_index_truncation_masks_spare_bits() -> None:
    indexer = BlindIndexer(b"i" * 32, bits=12)
    for i in range(100):
        value = indexer.index("customers.email", f"user{i}@example.com")
        assert len(value) == 2 and value[1] & 0x0F == 0


def test_truncated_index_yields_collisions_so_membership_is_deniable() -> None:
    """16-bit indexes: 100k distinct emails map onto far fewer index values (crypto-audit A.3)."""
    indexer = BlindIndexer(os.urandom(32), bits=16)
    values = {indexer.index("customers.email", f"user{i}@example.com") for i in range(100_000)}
    assert len(values) <= 65_536 < 100_000

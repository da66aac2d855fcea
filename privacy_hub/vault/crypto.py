"""Field ciphertexts: AES-256-GCM with associated data that pins each value to its cell.

Stored format (version 1)::

    version(1) | key_version(4, big-endian) | nonce(12) | ciphertext | tag(16)

Associated data binds the format version, the key version, and the table, column,
row id and customer id, each length-prefixed, so a ciphertext copied into another
cell, row or customer, or relabelled with another key version, fails to decrypt.
The header is inside the AAD: unlike Tink's prefix, it cannot be swapped.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Mapping

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from privacy_hub.vault.errors import DecryptionError

FORMAT_V1 = 1
NONCE_BYTES = 12
TAG_BYTES = 16
HEADER_BYTES = 1 + 4 + NONCE_BYTES
KEY_BYTES = 32


def length_prefixed(value: str) -> bytes:
    """One component of associated data: its UTF-8 length (2 bytes) and bytes."""
    raw = value.encode("utf-8")
    if len(raw) > 0xFFFF:
        raise ValueError("associated data component too long")
    return struct.pack(">H", len(raw)) + raw


def field_aad(
    key_version: int, table: str, column: str, row_id: str, customer_id: str
) -> bytes:
    """The associated data for one cell (format version 1)."""
    return (
        bytes([FORMAT_V1])
        + struct.pack(">I", key_version)
        + length_prefixed(table)
        + length_prefixed(column)
        + length_prefixed(row_id)
        + length_prefixed(customer_id)
    )


def seal(
    aead: AESGCM, key_version: int, plaintext: bytes, *, table: str, column: str,
    row_id: str, customer_id: str,
) -> bytes:
    """Encrypt one field value for one cell."""
    nonce = os.urandom(NONCE_BYTES)
    aad = field_aad(key_version, table, column, row_id, customer_id)
    header = bytes([FORMAT_V1]) + struct.pack(">I", key_version) + nonce
    return header + aead.encrypt(nonce, plaintext, aad)


def seal_row(
    aead: AESGCM, key_version: int, cells: Mapping[str, bytes], *, table: str, row_id: str,
    customer_id: str,
) -> dict[str, bytes]:
    """seal() of several cells (column: plaintext) of one row, for bulk loads.

    The very ciphertexts seal() makes, with what the cells share built once: about half
    the time of sealing them one by one.
    """
    head = bytes([FORMAT_V1]) + struct.pack(">I", key_version)
    table_part = head + length_prefixed(table)
    row_part = length_prefixed(row_id) + length_prefixed(customer_id)
    nonces = os.urandom(NONCE_BYTES * len(cells))
    encrypt = aead.encrypt
    out: dict[str, bytes] = {}
    for i, (column, plaintext) in enumerate(cells.items()):
        nonce = nonces[i * NONCE_BYTES:(i + 1) * NONCE_BYTES]
        aad = table_part + length_prefixed(column) + row_part
        out[column] = head + nonce + encrypt(nonce, plaintext, aad)
    return out


def key_version_of(blob: bytes) -> int:
    """The key version a ciphertext was sealed under (read from its header)."""
    if len(blob) < HEADER_BYTES + TAG_BYTES or blob[0] != FORMAT_V1:
        raise DecryptionError("not a vault ciphertext (unknown format or truncated)")
    return int(struct.unpack(">I", blob[1:5])[0])


def open_(
    aead: AESGCM, blob: bytes, *, table: str, column: str, row_id: str, customer_id: str,
) -> bytes:
    """Decrypt one cell; raise DecryptionError if it does not belong exactly there."""
    key_version = key_version_of(blob)
    nonce = blob[5:HEADER_BYTES]
    aad = field_aad(key_version, table, column, row_id, customer_id)
    try:
        return aead.decrypt(nonce, blob[HEADER_BYTES:], aad)
    except InvalidTag:
        raise DecryptionError(
            f"ciphertext in {table}.{column} does not authenticate for this row and customer "
            "(moved from another cell, or tampered with)"
        ) from None


# -- key wrapping -------------------------------------------------------------------
WRAP_V1 = 1


def wrap(kek: AESGCM, key: bytes, aad: bytes) -> bytes:
    """Wrap a key under a key-encryption key: version(1) | nonce(12) | ct | tag."""
    nonce = os.urandom(NONCE_BYTES)
    return bytes([WRAP_V1]) + nonce + kek.encrypt(nonce, key, aad)


def unwrap(kek: AESGCM, blob: bytes, aad: bytes) -> bytes:
    """Unwrap a key; raise DecryptionError when it is not bound to ``aad``."""
    if len(blob) < 1 + NONCE_BYTES + TAG_BYTES or blob[0] != WRAP_V1:
        raise DecryptionError("not a wrapped key (unknown format or truncated)")
    try:
        return kek.decrypt(blob[1 : 1 + NONCE_BYTES], blob[1 + NONCE_BYTES :], aad)
    except InvalidTag:
        raise DecryptionError("wrapped key does not authenticate (wrong key or binding)") from None

"""The root of the key hierarchy: it wraps key-encryption keys and nothing else.

The embedded default is a 32-byte key file with mode 0600 created by ``privacy-hub init``.
A KMS or Vault transit provider fits behind the same two methods.
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path
from typing import Protocol

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from privacy_hub.vault import crypto
from privacy_hub.vault.errors import KeyMissing

ROOT_KEY_BYTES = 32


class RootKey(Protocol):
    """Wraps and unwraps key-encryption keys."""

    key_id: str

    def wrap(self, key: bytes, aad: bytes) -> bytes: ...

    def unwrap(self, blob: bytes, aad: bytes) -> bytes: ...


class FileRootKey:
    """A root key held in a local file (embedded default and small deployments)."""

    def __init__(self, key: bytes) -> None:
        if len(key) != ROOT_KEY_BYTES:
            raise KeyMissing(f"root key must be {ROOT_KEY_BYTES} bytes, got {len(key)}")
        self._aead = AESGCM(key)
        # A short fingerprint names the key in logs without revealing it.
        self.key_id = "file:" + hashlib.sha256(b"privacy-hub/root-key-id|" + key).hexdigest()[:16]

    @classmethod
    def load(cls, path: Path) -> FileRootKey:
        """Read the key file, refusing one that other users can read."""
        try:
            st = path.stat()
        except FileNotFoundError:
            raise KeyMissing(
                f"root key file {path} does not exist: run `privacy-hub init` or set "
                "PRIVACY_HUB_ROOT_KEY_FILE"
            ) from None
        if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise KeyMissing(
                f"root key file {path} is readable by other users "
                f"(mode {stat.S_IMODE(st.st_mode):04o}); run `chmod 600 {path}`"
            )
        return cls(path.read_bytes())

    @staticmethod
    def create(path: Path) -> FileRootKey:
        """Write a new random root key with mode 0600; never overwrite one."""
        path.parent.mkdir(parents=True, exist_ok=True)
        key = os.urandom(ROOT_KEY_BYTES)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, key)
            os.fsync(fd)
        finally:
            os.close(fd)
        return FileRootKey(key)

    def wrap(self, key: bytes, aad: bytes) -> bytes:
        return crypto.wrap(self._aead, key, aad)

    def unwrap(self, blob: bytes, aad: bytes) -> bytes:
        return crypto.unwrap(self._aead, blob, aad)

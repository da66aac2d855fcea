"""Registered systems and their API keys.

Keys look like ``phk_<key id>_<secret>``. Only the SHA-256 of the secret is stored;
checks look the row up by key id and compare hashes in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import ip_address
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

import audit
from audit.clock import rfc3339, utcnow
from audit.ids import new_id
from privacy_hub.models import System
from privacy_hub.vault import crypto

SCOPES = (
    "customers:write", "customers:read", "consents:write", "consents:read", "data:read",
    "events:write", "requests:write", "requests:read", "requests:manage", "purposes:manage",
    "systems:manage", "audit:read",
)
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
KEY_PREFIX = "phk_"


class SystemRegistryError(Exception):
    """Base for system registry errors."""


class InvalidSystem(SystemRegistryError):
    """The system's fields are not acceptable; ``errors`` names each bad field."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__("invalid system: " + ", ".join(sorted(errors)))
        self.errors = errors


class SystemExists(SystemRegistryError):
    """A system with that name is already registered."""


@dataclass(frozen=True)
class Principal:
    """The authenticated caller of an API request."""

    system_id: str
    name: str
    scopes: frozenset[str]
    purposes: frozenset[str] | None

    @property
    def actor(self) -> audit.Actor:
        return audit.Actor("system", self.name)

    def may_use_purpose(self, purpose: str) -> bool:
        return self.purposes is None or purpose in self.purposes


def _hash_secret(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def _new_api_key() -> tuple[str, str]:
    """A fresh key id (public, finds the row) and secret (only its hash is stored)."""
    return secrets.token_hex(8), secrets.token_urlsafe(32)


def _webhook_secret_aad(system_id: str) -> bytes:
    return b"systems.webhook_secret|" + system_id.encode()


def validate_webhook_url(url: str) -> str | None:
    """None if acceptable: https, or http to a loopback address (development, tests)."""
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return None
    if parts.scheme == "http" and parts.hostname:
        host = parts.hostname
        if host == "localhost":
            return None
        try:
            if ip_address(host).is_loopback:
                return None
        except ValueError:
            pass
    return "must be an https:// URL (http:// only to a loopback address)"


@dataclass(frozen=True)
class _CachedKey:
    expires: float  # time.monotonic()
    key_hash: bytes
    principal: Principal


#: how long a process trusts what it read about an API key (seconds): the longest a
#: rotated key or a disabled system keeps working in another process
AUTH_CACHE_SECONDS = 5.0
AUTH_CACHE_SIZE = 1024
_KEY_BY_ID = select(System.id, System.name, System.scopes, System.purposes, System.key_hash,
                    System.disabled_at).where(System.key_id == bindparam("key_id"))


class SystemRegistry:
    """Registers downstream systems, issues and checks their API keys, and keeps their
    webhook secrets sealed under the hub's app-secrets key."""

    def __init__(self, secrets_key: bytes) -> None:
        self._aead = AESGCM(secrets_key)
        #: key id -> what authenticate() needs, for AUTH_CACHE_SECONDS
        self._keys: dict[str, _CachedKey] = {}

    def _seal_webhook_secret(self, system_id: str, secret: str) -> bytes:
        return crypto.wrap(self._aead, secret.encode(), _webhook_secret_aad(system_id))

    def webhook_secret(self, system: System) -> str:
        """The system's webhook signing secret, in clear (to sign a delivery)."""
        return crypto.unwrap(self._aead, system.webhook_secret_ct,
                             _webhook_secret_aad(system.id)).decode()

    def create(self, session: Session, *, name: str, scopes: list[str],
               purposes: list[str] | None = None, webhook_url: str | None = None,
               actor: audit.Actor) -> tuple[System, str, str]:
        """Register a system; returns it with its API key and webhook secret (shown once)."""
        errors: dict[str, list[str]] = {}
        if not NAME_RE.match(name):
            errors["name"] = ["use 1-64 lowercase letters, digits, '.', '_' or '-'"]
        bad = sorted(set(scopes) - set(SCOPES))
        if bad:
            errors["scopes"] = [f"unknown scope(s): {', '.join(bad)}"]
        if webhook_url is not None and (msg := validate_webhook_url(webhook_url)):
            errors["webhook_url"] = [msg]
        if errors:
            raise InvalidSystem(errors)
        if session.scalar(select(System.id).where(System.name == name)):
            raise SystemExists(f"a system named {name!r} already exists")
        key_id, secret = _new_api_key()
        webhook_secret = "whsec_" + secrets.token_urlsafe(32)
        system_id = new_id()
        system = System(
            id=system_id, name=name, scopes=json.dumps(sorted(set(scopes))),
            purposes=None if purposes is None else json.dumps(sorted(set(purposes))),
            webhook_url=webhook_url,
            webhook_secret_ct=self._seal_webhook_secret(system_id, webhook_secret),
            key_id=key_id, key_hash=_hash_secret(secret), created_at=utcnow(),
        )
        session.add(system)
        session.flush()
        audit.record(session, actor=actor, action="system.created",
                     details={"system": name, "scopes": sorted(set(scopes))})
        return system, f"{KEY_PREFIX}{key_id}_{secret}", webhook_secret

    def rotate_key(self, session: Session, name: str, *, actor: audit.Actor) -> str:
        """Issue a new API key for a system; the old one stops working."""
        system = session.scalar(select(System).where(System.name == name))
        if system is None:
            raise InvalidSystem({"name": [f"no system named {name!r}"]})
        self._keys.pop(system.key_id, None)  # the old key stops working here at once
        key_id, secret = _new_api_key()
        system.key_id = key_id
        system.key_hash = _hash_secret(secret)
        audit.record(session, actor=actor, action="system.key_rotated", details={"system": name})
        return f"{KEY_PREFIX}{key_id}_{secret}"

    def disable(self, session: Session, name: str, *, actor: audit.Actor) -> System:
        """Revoke a system: its API key stops working and it receives no more webhooks.
        Once disabled it stays disabled (a new system gets a new name and key)."""
        system = session.scalar(select(System).where(System.name == name).with_for_update())
        if system is None:
            raise InvalidSystem({"name": [f"no system named {name!r}"]})
        if system.disabled_at is None:
            system.disabled_at = utcnow()
            self._keys.pop(system.key_id, None)  # the key stops working here at once
            audit.record(session, actor=actor, action="system.disabled",
                         details={"system": name})
        return system

    def authenticate(self, sessions: Callable[[], Session], api_key: str) -> Principal | None:
        """The principal for a valid key, or None. The secret is compared in constant time.

        ``sessions`` makes a session for the lookup (a read-only one: no write lock). Keys
        are cached per process for AUTH_CACHE_SECONDS, so a key rotated or a system
        disabled by another process stops working within that time (at once in this one).
        """
        if not api_key.startswith(KEY_PREFIX):
            return None
        key_id, sep, secret = api_key[len(KEY_PREFIX):].partition("_")
        if not sep or not key_id or not secret or len(api_key) > 200:
            return None
        now = time.monotonic()
        cached = self._keys.get(key_id)
        if cached is None or cached.expires <= now:
            cached = self._load_key(sessions, key_id, now)
        # Hash even when the id is unknown, so timing does not tell ids apart.
        candidate = _hash_secret(secret)
        expected = cached.key_hash if cached is not None else b"\0" * 32
        if cached is None or not hmac.compare_digest(candidate, expected):
            return None
        return cached.principal

    def _load_key(self, sessions: Callable[[], Session], key_id: str,
                  now: float) -> _CachedKey | None:
        with sessions() as session:
            row = session.execute(_KEY_BY_ID, {"key_id": key_id}).first()
        if row is None or row.disabled_at:
            self._keys.pop(key_id, None)  # unknown ids are not cached: no memory to fill
            return None
        principal = Principal(
            system_id=row.id, name=row.name, scopes=frozenset(json.loads(row.scopes)),
            purposes=None if row.purposes is None else frozenset(json.loads(row.purposes)),
        )
        if len(self._keys) >= AUTH_CACHE_SIZE:
            self._keys.clear()
        cached = self._keys[key_id] = _CachedKey(now + AUTH_CACHE_SECONDS, row.key_hash,
                                                 principal)
        return cached

    @staticmethod
    def public(system: System) -> dict[str, object]:
        """The system as the API shows it (never its key hash or webhook secret)."""
        return {
            "id": system.id, "name": system.name, "scopes": json.loads(system.scopes),
            "purposes": None if system.purposes is None else json.loads(system.purposes),
            "webhook_url": system.webhook_url, "created_at": rfc3339(system.created_at),
        }

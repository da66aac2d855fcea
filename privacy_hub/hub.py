"""The composition root: settings, engines, keys and services, wired once per process.

The web app, the CLI and the background worker all start from ``Hub.open(settings)``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from sqlalchemy import Engine, inspect
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

import audit
from audit.clock import utcnow
from consent import receipt_keys
from consent.ledger import Ledger
from consent.receipts import Controller, ReceiptSigner, jwk
from dsar.deadlines import WEEKENDS_ONLY, WorkingDays
from privacy_hub.config import ConfigError, Settings
from privacy_hub.db import make_engine, make_sessionmaker, read_only, transaction
from privacy_hub.gate.checklog import CheckLog
from privacy_hub.holiday_calendar import UnknownRegion, working_days
from privacy_hub.jobs import outbox
from privacy_hub.staff.accounts import StaffDirectory
from privacy_hub.systems import SystemRegistry
from privacy_hub.vault import BlindIndexer, KeyRing, KeystoreBase, Vault
from privacy_hub.vault.errors import DecryptionError, KeyMissing
from privacy_hub.vault.keystore import HubKey
from privacy_hub.vault.proof import ProofVault
from privacy_hub.vault.root import FileRootKey
from privacy_hub.vault.suppression import SuppressionList

HUB_KEYS = ("blind_index", "app_secrets", "audit_signing", "receipt_signing", "suppression")
#: hub keys added after instances were first made: created when missing at any start, so
#: an instance brought up to date with `privacy-hub db upgrade` has them on its next start
#: ("suppression": the suppression list's own hash key, never the blind-index key)
ADDED_HUB_KEYS = frozenset({"suppression"})


def signing_key_id(prefix: str, public: Ed25519PublicKey) -> str:
    """A stable id for a public signing key: ``<prefix>-<16 hex of its SHA-256>``."""
    raw = public.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return f"{prefix}-{hashlib.sha256(raw).hexdigest()[:16]}"


def receipt_signer(raw: bytes) -> ReceiptSigner:
    """The receipt signer of a 32-byte hub key (the Ed25519 seed)."""
    private = Ed25519PrivateKey.from_private_bytes(raw)
    return ReceiptSigner(signing_key_id("receipts", private.public_key()), private)


def _load_keys(sessions: sessionmaker[Session], keyring: KeyRing, bootstrap: bool
               ) -> tuple[list[dict[str, object]], dict[str, bytes]]:
    """The hub keys, those missing created (every one with ``bootstrap``, else the
    ADDED_HUB_KEYS), and what was created, for the audit log."""
    for attempt in range(2):
        created: list[dict[str, object]] = []
        try:
            with transaction(sessions) as session:
                if bootstrap and keyring.keks.bootstrap(session):
                    created.append({"kind": "key_encryption_key", "version": 1})
                creatable = {name for name in HUB_KEYS if bootstrap or name in ADDED_HUB_KEYS}
                created += [{"kind": "hub_key", "name": name} for name in HUB_KEYS
                            if name in creatable and session.get(HubKey, name) is None]
                keys = {name: keyring.hub_key(session, name, create=name in creatable)
                        for name in HUB_KEYS}
            return created, keys
        except IntegrityError:
            # Another process starting at the same time created a missing key first:
            # read the one it stored (the unstored copy made here was never cached).
            keyring.forget_hub_keys()
            if attempt:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


@dataclass
class Hub:
    """One process's wiring: settings, engines, session factories, keys and services."""

    settings: Settings
    engine: Engine
    keystore_engine: Engine
    sessions: sessionmaker[Session]
    #: for work that only reads: no audit entries, no write lock on SQLite
    read_sessions: sessionmaker[Session]
    keyring: KeyRing
    vault: Vault
    systems: SystemRegistry
    staff: StaffDirectory
    audit_signer: audit.CheckpointSigner
    ledger: Ledger
    checklog: CheckLog
    #: consent evidence under the customers' keys (R-CREC-06)
    proof: ProofVault
    #: the days a request's deadline may fall on (PRIVACY_HUB_HOLIDAYS)
    working_days: WorkingDays = WEEKENDS_ONLY

    @classmethod
    def open(cls, settings: Settings, *, bootstrap: bool = False) -> Hub:
        """Connect, load keys, and install the audit chain on the session factory.

        With ``bootstrap`` (``privacy-hub init``), missing keys are created.
        """
        settings = settings.resolved()
        try:
            days = working_days(settings.holidays)
        except UnknownRegion as exc:
            raise ConfigError(f"PRIVACY_HUB_HOLIDAYS: {exc}") from None
        engine = make_engine(settings.database_url, sqlite_synchronous=settings.sqlite_synchronous)
        if settings.keystore_url and settings.keystore_url != settings.database_url:
            keystore_engine = make_engine(settings.keystore_url,
                                          sqlite_synchronous=settings.sqlite_synchronous)
            binds: dict[type[Any], Engine] | None = {KeystoreBase: keystore_engine}
        else:
            keystore_engine, binds = engine, None
        sessions = make_sessionmaker(engine, binds)
        read_sessions = make_sessionmaker(
            read_only(engine), {KeystoreBase: read_only(keystore_engine)} if binds else None)
        try:
            keyring = KeyRing(FileRootKey.load(settings.root_key_path))
        except KeyMissing as exc:
            raise ConfigError(str(exc)) from None
        if not inspect(keystore_engine).has_table("keystore_keks"):
            raise ConfigError("the database has no tables yet: run `privacy-hub init` "
                              "(new instance) or `privacy-hub db upgrade`")
        # absent on an instance not yet upgraded (`privacy-hub db upgrade` runs it)
        publish_receipt_key = inspect(engine).has_table("consent_receipt_keys")
        try:
            created, keys = _load_keys(sessions, keyring, bootstrap)
        except DecryptionError:
            raise ConfigError(
                f"the root key {settings.root_key_path} does not open this database's keys "
                "(they were made with another root key): set PRIVACY_HUB_ROOT_KEY_FILE to "
                "the root key file `privacy-hub init` created for this database") from None
        except KeyMissing as exc:
            raise ConfigError(str(exc)) from None
        signer_now = receipt_signer(keys["receipt_signing"])
        if publish_receipt_key:
            with transaction(sessions) as session:
                receipt_keys.register(session, signer_now, utcnow())
        private = Ed25519PrivateKey.from_private_bytes(keys["audit_signing"])
        signer = audit.CheckpointSigner(signing_key_id("audit", private.public_key()), private)
        audit.install(sessions, signer=signer, checkpoint_every=settings.audit_checkpoint_every)
        outbox.install(sessions, sealing_key=keys["app_secrets"])
        if created:
            with transaction(sessions) as session:
                for details in created:
                    audit.record(session, actor=audit.Actor("cli", "init"), action="key.created",
                                 details=details)
        proof = ProofVault(keyring, shared_keystore=keystore_engine is engine)
        # R-CREC-06: evidence a migration moved out of the ledger is sealed before use.
        proof.seal_legacy(sessions)
        vault = Vault(keyring, BlindIndexer(keys["blind_index"]),
                      suppression=SuppressionList(keys["suppression"]))
        vault.erasure_hooks.append(proof.on_erasure)
        ledger = Ledger(
            signer=signer_now,
            controller=Controller(
                name=settings.controller_name, contact=settings.controller_email,
                email=settings.controller_email, address=settings.controller_address,
                policy_url=settings.controller_policy_url,
                jurisdiction=settings.controller_jurisdiction),
            proof=proof)
        hub = cls(
            ledger=ledger,
            checklog=CheckLog(sessions),
            working_days=days,
            read_sessions=read_sessions,
            settings=settings, engine=engine, keystore_engine=keystore_engine, sessions=sessions,
            keyring=keyring, vault=vault, proof=proof,
            systems=SystemRegistry(keys["app_secrets"]), audit_signer=signer,
            staff=StaffDirectory(keys["app_secrets"]),
        )
        # R-ROPA-01: the records of processing are versioned at every change of a purpose or
        # system, and at this start for the configuration. Imported here: the use cases
        # import the hub.
        from privacy_hub.usecases import ropa_versions

        ropa_versions.install(hub)
        return hub

    def audit_public_keys(self) -> dict[str, Ed25519PublicKey]:
        """The audit checkpoint keys by key id, to verify the chain."""
        return {self.audit_signer.key_id: self.audit_signer.private_key.public_key()}

    def receipt_jwks(self, session: Session) -> dict[str, object]:
        """Every receipt signing key, current and retired, as a JWK set: every receipt
        ever issued verifies offline with it."""
        published = receipt_keys.jwks(session)
        signer = self.ledger.signer
        if not any(k["kid"] == signer.key_id for k in published["keys"]):
            # an instance upgraded while this process ran: the current key is published here
            published["keys"].insert(0, jwk(signer.key_id, signer.private_key.public_key()))
        return published

    def close(self) -> None:
        """Stop the check log's writer and close the database connections."""
        self.checklog.stop()
        self.engine.dispose()
        if self.keystore_engine is not self.engine:
            self.keystore_engine.dispose()

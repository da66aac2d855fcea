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
from sqlalchemy.orm import Session, sessionmaker

import audit
from consent.ledger import Ledger
from consent.receipts import Controller, ReceiptSigner, jwk
from privacy_hub.config import ConfigError, Settings
from privacy_hub.db import make_engine, make_sessionmaker, read_only, transaction
from privacy_hub.gate.checklog import CheckLog
from privacy_hub.jobs import outbox
from privacy_hub.staff.accounts import StaffDirectory
from privacy_hub.systems import SystemRegistry
from privacy_hub.vault import BlindIndexer, KeyRing, KeystoreBase, Vault
from privacy_hub.vault.errors import KeyMissing
from privacy_hub.vault.keystore import HubKey
from privacy_hub.vault.proof import ProofVault
from privacy_hub.vault.root import FileRootKey

HUB_KEYS = ("blind_index", "app_secrets", "audit_signing", "receipt_signing")


def signing_key_id(prefix: str, public: Ed25519PublicKey) -> str:
    """A stable id for a public signing key: ``<prefix>-<16 hex of its SHA-256>``."""
    raw = public.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return f"{prefix}-{hashlib.sha256(raw).hexdigest()[:16]}"


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

    @classmethod
    def open(cls, settings: Settings, *, bootstrap: bool = False) -> Hub:
        """Connect, load keys, and install the audit chain on the session factory.

        With ``bootstrap`` (``privacy-hub init``), missing keys are created.
        """
        settings = settings.resolved()
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
        created: list[dict[str, object]] = []
        with transaction(sessions) as session:
            if bootstrap:
                if keyring.keks.bootstrap(session):
                    created.append({"kind": "key_encryption_key", "version": 1})
                created += [{"kind": "hub_key", "name": name} for name in HUB_KEYS
                            if session.get(HubKey, name) is None]
            keys = {name: keyring.hub_key(session, name, create=bootstrap) for name in HUB_KEYS}
        private = Ed25519PrivateKey.from_private_bytes(keys["audit_signing"])
        signer = audit.CheckpointSigner(signing_key_id("audit", private.public_key()), private)
        audit.install(sessions, signer=signer, checkpoint_every=settings.audit_checkpoint_every)
        outbox.install(sessions, sealing_key=keys["app_secrets"])
        if created:
            with transaction(sessions) as session:
                for details in created:
                    audit.record(session, actor=audit.Actor("cli", "init"), action="key.created",
                                 details=details)
        receipt_key = Ed25519PrivateKey.from_private_bytes(keys["receipt_signing"])
        proof = ProofVault(keyring, shared_keystore=keystore_engine is engine)
        # R-CREC-06: evidence a migration moved out of the ledger is sealed before use.
        proof.seal_legacy(sessions)
        vault = Vault(keyring, BlindIndexer(keys["blind_index"]))
        vault.erasure_hooks.append(proof.on_erasure)
        ledger = Ledger(
            signer=ReceiptSigner(signing_key_id("receipts", receipt_key.public_key()), receipt_key),
            controller=Controller(
                name=settings.controller_name, contact=settings.controller_email,
                email=settings.controller_email, address=settings.controller_address,
                policy_url=settings.controller_policy_url,
                jurisdiction=settings.controller_jurisdiction),
            proof=proof)
        return cls(
            ledger=ledger,
            checklog=CheckLog(sessions),
            read_sessions=read_sessions,
            settings=settings, engine=engine, keystore_engine=keystore_engine, sessions=sessions,
            keyring=keyring, vault=vault, proof=proof,
            systems=SystemRegistry(keys["app_secrets"]), audit_signer=signer,
            staff=StaffDirectory(keys["app_secrets"]),
        )

    def audit_public_keys(self) -> dict[str, Ed25519PublicKey]:
        """The audit checkpoint keys by key id, to verify the chain."""
        return {self.audit_signer.key_id: self.audit_signer.private_key.public_key()}

    def receipt_jwks(self) -> dict[str, object]:
        """The receipt signing key as a JWK set, to verify receipts offline."""
        signer = self.ledger.signer
        return {"keys": [jwk(signer.key_id, signer.private_key.public_key())]}

    def close(self) -> None:
        """Stop the check log's writer and close the database connections."""
        self.checklog.stop()
        self.engine.dispose()
        if self.keystore_engine is not self.engine:
            self.keystore_engine.dispose()

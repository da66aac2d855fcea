"""The technical and organisational security measures (Art. 32) as the records of
processing state them (Art. 30(1)(g)): read from this hub's configuration and code, so the
record says what this deployment does, not what a deployment could do."""

from __future__ import annotations

from urllib.parse import urlsplit

from privacy_hub.hub import Hub
from privacy_hub.vault.crypto import KEY_BYTES, NONCE_BYTES
from privacy_hub.vault.models import INDEXED_FIELDS


def _database(url: str) -> str:
    return "PostgreSQL" if url.startswith("postgresql") else (
        "SQLite" if url.startswith("sqlite") else url.split(":", 1)[0])


def security_measures(hub: Hub) -> list[str]:
    """Each measure in force, one sentence each (Art. 32(1)(a)-(d))."""
    settings = hub.settings
    separate_keystore = hub.keystore_engine is not hub.engine
    measures = [
        # vault/crypto.py: the one cipher every personal field is sealed with
        f"Every personal field encrypted with AES-{KEY_BYTES * 8}-GCM ({NONCE_BYTES * 8}-bit "
        "random nonce per value, bound to its table, column, row and customer) under one "
        "random data key per customer; erasure destroys that key (crypto-shredding)",
        "Customer data keys wrapped under versioned key-encryption keys, themselves wrapped "
        f"under a root key held in a file outside the database ({settings.root_key_path.name})",
        ("Wrapped customer keys kept in a separate key-store database "
         f"({_database(settings.keystore_url or '')}), backed up on its own schedule"
         if separate_keystore else
         "Wrapped customer keys kept in the main database (no separate key store configured: "
         "PRIVACY_HUB_KEYSTORE_URL)"),
        "Lookups by " + ", ".join(INDEXED_FIELDS) + " through keyed blind indexes "
        "(HMAC-SHA256), never plaintext",
        "Downstream systems authenticate with scoped API keys stored only as hashes, may be "
        "limited to purposes, and receive webhooks signed with HMAC-SHA256",
        "Staff sign in with an argon2id password and a TOTP second factor; roles limit what "
        "each may see and do",
        "Tamper-evident audit log (hash chain) with an Ed25519-signed checkpoint every "
        f"{settings.audit_checkpoint_every} entries (key {hub.audit_signer.key_id})",
        f"Database: {_database(settings.database_url)}",
    ]
    scheme = urlsplit(settings.base_url).scheme
    measures.append("TLS in transit: the hub is reached over https" if scheme == "https" else
                    "No TLS configured: the hub's base URL is http (local use only)")
    if settings.smtp_host:
        measures.append("Mail sent through an SMTP relay with STARTTLS" if settings.smtp_starttls
                        else "Mail sent through an SMTP relay without STARTTLS")
    else:
        measures.append("Mail written to the instance's outbox folder (no SMTP relay)")
    return measures


def measures_text(measures: list[str]) -> str:
    """The measures as one paragraph, as the CSV and each activity carry them."""
    return "; ".join(measures) + "."

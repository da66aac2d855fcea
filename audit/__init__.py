"""The tamper-evident audit log: append in the caller's transaction, chain, sign, verify.

The lowest layer: it imports neither Flask nor any other package of the hub.
"""

from audit.chain import GENESIS_HASH, checkpoint_message, entry_hash
from audit.errors import AuditError, AuditNotInstalled, InvalidAuditEntry, PersonalDataInAudit
from audit.log import Actor, CheckpointSigner, entries, install, public_entry, record
from audit.models import AuditBase, AuditCheckpoint, AuditEntry, AuditHead
from audit.verify import VerifyReport, export_checkpoints, verify_chain

__all__ = [
    "GENESIS_HASH",
    "Actor",
    "AuditBase",
    "AuditCheckpoint",
    "AuditEntry",
    "AuditError",
    "AuditHead",
    "AuditNotInstalled",
    "CheckpointSigner",
    "InvalidAuditEntry",
    "PersonalDataInAudit",
    "VerifyReport",
    "checkpoint_message",
    "entries",
    "entry_hash",
    "export_checkpoints",
    "install",
    "public_entry",
    "record",
    "verify_chain",
]

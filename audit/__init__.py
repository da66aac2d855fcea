"""The tamper-evident audit log: append in the caller's transaction, chain, sign, verify.

The lowest layer: it imports neither Flask nor any other package of the hub. Its modules:
``record`` (check and queue entries), ``details`` (what an entry may hold),
``committing`` (``install``: chain the queued entries at commit), ``unit_of_work`` (work
queued on a session until it commits), ``head`` (appending under the head's lock),
``insert`` (inserting chained entries), ``appender`` (group commit), ``prepared``
(statements compiled once per dialect), ``read``, ``verify``, ``checkpoints`` (signatures,
the anchor of a pruned chain, the export), ``prune`` (deleting old entries below a signed
checkpoint), ``chain`` (the pure hash chain), ``models``, ``sql``, ``clock``, ``ids``,
``errors``.
"""

from audit.appender import Appender
from audit.chain import GENESIS_HASH, checkpoint_message, entry_hash
from audit.checkpoints import export_checkpoints
from audit.committing import install
from audit.errors import (
    AuditChainBroken,
    AuditError,
    AuditNotInstalled,
    InvalidAuditEntry,
    PersonalDataInAudit,
)
from audit.head import CheckpointSigner
from audit.models import AuditBase, AuditCheckpoint, AuditEntry, AuditHead
from audit.prune import prune
from audit.read import entries, public_entry
from audit.record import Actor, entry, record, record_many
from audit.verify import VerifyReport, verify_chain

__all__ = [
    "GENESIS_HASH",
    "Actor",
    "Appender",
    "AuditBase",
    "AuditChainBroken",
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
    "entry",
    "entry_hash",
    "export_checkpoints",
    "install",
    "prune",
    "public_entry",
    "record",
    "record_many",
    "verify_chain",
]

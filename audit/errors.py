"""The audit package's errors: one family, mapped to HTTP problems by the web layer."""

from __future__ import annotations


class AuditError(Exception):
    """Base class for every error raised by the audit package."""


class InvalidAuditEntry(AuditError, ValueError):
    """An entry that does not fit the log's format: bad action, actor, or details."""


class PersonalDataInAudit(InvalidAuditEntry):
    """Details or ids that look like personal data (R-AUD-02: audit entries carry none)."""


class AuditNotInstalled(AuditError):
    """record() on a session whose factory was never passed to audit.install()."""


class AuditChainBroken(AuditError):
    """prune() found the chain it would cut does not verify: nothing is pruned, and nothing
    is signed over it. ``seq`` and ``problem`` name seqs and key ids only."""

    def __init__(self, seq: int | None, problem: str) -> None:
        super().__init__(f"the audit chain does not verify: {problem}")
        self.seq = seq
        self.problem = problem

"""Settings from ``PRIVACY_HUB_*`` environment variables and the instance folder.

The embedded default (SQLite in the instance folder) creates its own secrets with
``privacy-hub init``. Any other deployment must be given strong secrets explicitly,
and the hub refuses to start, naming the variable, when one is missing or weak.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from privacy_hub.holiday_calendar import UnknownRegion, normalise_region

SECRET_KEY_FILE = "secret.key"  # noqa: S105 - a file name, not a secret
ROOT_KEY_FILE = "root.key"
MIN_SECRET_BYTES = 32


class ConfigError(Exception):
    """The configuration cannot be used; the message names the variable to fix."""


@dataclass(frozen=True)
class Settings:
    instance_path: Path
    database_url: str
    keystore_url: str | None = None
    base_url: str = "http://127.0.0.1:8000"
    secret_key: bytes | None = field(default=None, repr=False)
    root_key_file: Path | None = None
    smtp_host: str | None = None
    smtp_port: int = 25
    smtp_username: str | None = None
    smtp_password: str | None = field(default=None, repr=False)
    smtp_starttls: bool = False
    mail_from: str = "privacy@localhost"
    dpo_email: str | None = None
    #: whose public holidays move a request's deadline: "DE", "DE-BY" (None: weekends only)
    holidays: str | None = None
    #: FULL: SQLite fsyncs the WAL in every COMMIT, under the write lock; NORMAL: the hub
    #: fdatasyncs it after COMMIT and the lock, before answering (privacy_hub/wal_sync.py).
    #: Both keep every acknowledged write through a power cut; OFF does not (tests only).
    sqlite_synchronous: str = "NORMAL"
    max_content_length: int = 1024 * 1024
    audit_checkpoint_every: int = 1000
    run_worker_in_process: bool = True
    #: background jobs (webhooks, mail): attempts before a job is marked dead
    webhook_max_attempts: int = 8
    #: seconds; after the n-th failed attempt the job waits about base * 2**(n-1)
    #: (jittered between half and all of it), at most webhook_backoff_max
    webhook_backoff_base: float = 60.0
    webhook_backoff_max: float = 6 * 3600.0
    #: seconds a worker holds a claimed job; a job whose worker died is due again after it
    worker_lease_seconds: float = 60.0
    #: the data controller named on consent receipts and in the records of processing
    controller_name: str = "Example Shop GmbH"
    controller_email: str = "privacy@shop.example"
    controller_address: str = "Example Street 1, 10115 Berlin, DE"
    controller_policy_url: str = "https://shop.example/privacy"
    controller_jurisdiction: str = "EU"
    #: the shop's name and main colour on the portal, the console and the cookie banner
    shop_name: str = "Example Shop"
    brand_color: str = "#0b5394"
    #: origins of the shop's pages that embed the cookie banner (CORS); the hub's own
    #: origin (the demo shop) is always allowed
    shop_origins: tuple[str, ...] = ()
    #: R-CREC-06: days a consent decision's evidence is kept after the consent ended
    #: (superseded, withdrawn or expired), then purged; three years by default, the
    #: regular limitation period (§ 195 BGB)
    consent_proof_retention_days: int = 3 * 365
    inactivity_days: int = 3 * 365
    inactivity_notice_days: int = 30
    # R-RET-02: a customer with no purchase, sign-in, consent decision or request for
    # inactivity_days is erased (privacy_hub/usecases/inactivity.py), after a mail
    # inactivity_notice_days before that lets them keep their account.
    #: R-RET-01: how long each store keeps what it holds (privacy_hub/retention/policies.py
    #: says from when, why, and what happens at the end); days
    retention_audit_days: int = 6 * 365
    retention_requests_days: int = 3 * 365
    retention_exports_days: int = 30
    retention_tokens_days: int = 7
    retention_outbox_days: int = 90
    retention_check_log_days: int = 365
    retention_idempotency_days: int = 7
    retention_banner_choices_days: int = 3 * 365
    retention_disclosures_days: int = 3 * 365
    #: rows one transaction of the retention pass deletes at most (a short write lock)
    retention_batch_size: int = 500
    testing: bool = False

    @property
    def embedded(self) -> bool:
        """True for the embedded default: SQLite in a local instance folder."""
        return self.database_url.startswith("sqlite")

    @property
    def controller(self) -> dict[str, str]:
        """The controller as records of processing and evidence packs name it."""
        return {"name": self.controller_name, "contact": self.controller_email,
                "address": self.controller_address,
                "dpo": self.dpo_email or self.controller_email}

    @property
    def root_key_path(self) -> Path:
        """The root key file: PRIVACY_HUB_ROOT_KEY_FILE, else root.key in the instance."""
        return self.root_key_file or self.instance_path / ROOT_KEY_FILE

    def with_(self, **changes: object) -> Settings:
        """A copy with ``changes`` (settings are frozen)."""
        return replace(self, **changes)  # type: ignore[arg-type]

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read settings from the environment (``os.environ`` by default)."""
        env = os.environ if environ is None else environ
        instance = Path(env.get("PRIVACY_HUB_INSTANCE_PATH", "./instance")).resolve()
        database_url = env.get("PRIVACY_HUB_DATABASE_URL") or f"sqlite:///{instance / 'hub.db'}"
        secret = env.get("PRIVACY_HUB_SECRET_KEY")
        return cls(
            instance_path=instance,
            database_url=database_url,
            keystore_url=env.get("PRIVACY_HUB_KEYSTORE_URL") or None,
            base_url=env.get("PRIVACY_HUB_BASE_URL", "http://127.0.0.1:8000").rstrip("/"),
            secret_key=secret.encode() if secret else None,
            root_key_file=Path(env["PRIVACY_HUB_ROOT_KEY_FILE"]) if env.get(
                "PRIVACY_HUB_ROOT_KEY_FILE") else None,
            smtp_host=env.get("PRIVACY_HUB_SMTP_HOST") or None,
            smtp_port=_int(env, "PRIVACY_HUB_SMTP_PORT", 25),
            smtp_username=env.get("PRIVACY_HUB_SMTP_USERNAME") or None,
            smtp_password=env.get("PRIVACY_HUB_SMTP_PASSWORD") or None,
            smtp_starttls=env.get("PRIVACY_HUB_SMTP_STARTTLS", "").lower() in {"1", "true", "yes"},
            mail_from=env.get("PRIVACY_HUB_MAIL_FROM", "privacy@localhost"),
            dpo_email=env.get("PRIVACY_HUB_DPO_EMAIL") or None,
            holidays=_holidays(env, "PRIVACY_HUB_HOLIDAYS"),
            sqlite_synchronous=env.get("PRIVACY_HUB_SQLITE_SYNCHRONOUS", "NORMAL").upper(),
            max_content_length=_int(env, "PRIVACY_HUB_MAX_CONTENT_LENGTH", 1024 * 1024),
            webhook_max_attempts=_int(env, "PRIVACY_HUB_WEBHOOK_MAX_ATTEMPTS", 8, minimum=1),
            webhook_backoff_base=_float(env, "PRIVACY_HUB_WEBHOOK_BACKOFF_BASE", 60.0),
            webhook_backoff_max=_float(env, "PRIVACY_HUB_WEBHOOK_BACKOFF_MAX", 6 * 3600.0),
            worker_lease_seconds=_float(env, "PRIVACY_HUB_WORKER_LEASE_SECONDS", 60.0,
                                        minimum=1.0),
            shop_name=env.get("PRIVACY_HUB_SHOP_NAME") or "Example Shop",
            brand_color=_colour(env, "PRIVACY_HUB_BRAND_COLOR", "#0b5394"),
            shop_origins=_origins(env, "PRIVACY_HUB_SHOP_ORIGINS"),
            consent_proof_retention_days=_int(env, "PRIVACY_HUB_CONSENT_PROOF_RETENTION_DAYS",
                                              3 * 365, minimum=1),
            inactivity_days=_int(env, "PRIVACY_HUB_INACTIVITY_DAYS", 3 * 365, minimum=1),
            inactivity_notice_days=_int(env, "PRIVACY_HUB_INACTIVITY_NOTICE_DAYS", 30,
                                        minimum=1),
        ).with_(**_retention(env)).with_(**{f"controller_{name}": env[f"PRIVACY_HUB_CONTROLLER_{name.upper()}"]
                   for name in ("name", "email", "address", "policy_url", "jurisdiction")
                   if env.get(f"PRIVACY_HUB_CONTROLLER_{name.upper()}")})

    def resolved(self) -> Settings:
        """Settings with secrets loaded; raise ConfigError naming what is missing or weak."""
        secret = self.secret_key
        if secret is None:
            if not self.embedded:
                raise ConfigError(
                    "PRIVACY_HUB_SECRET_KEY is not set: outside the embedded SQLite default "
                    f"it must be at least {MIN_SECRET_BYTES} random bytes "
                    "(e.g. `python -c 'import secrets; print(secrets.token_urlsafe(48))'`)"
                )
            path = self.instance_path / SECRET_KEY_FILE
            if not path.exists():
                raise ConfigError(
                    f"{path} does not exist: run `privacy-hub init` to create the instance"
                )
            secret = path.read_bytes().strip()
        check_secret("PRIVACY_HUB_SECRET_KEY", secret)
        if self.inactivity_notice_days >= self.inactivity_days:
            raise ConfigError("PRIVACY_HUB_INACTIVITY_NOTICE_DAYS must be fewer than "
                              "PRIVACY_HUB_INACTIVITY_DAYS: the notice comes before the erasure")
        if not self.embedded and self.root_key_file is None:
            # Never a root.key of the instance folder: a second node would make its own,
            # which opens none of the database's keys.
            raise ConfigError(
                "PRIVACY_HUB_ROOT_KEY_FILE is not set: outside the embedded SQLite default "
                "every node needs it, naming the root key file `privacy-hub init` created "
                "on the first node"
            )
        return replace(self, secret_key=secret)


def check_secret(name: str, value: bytes) -> None:
    """Refuse secrets that are short or obviously not random."""
    raw = value
    try:  # accept base64/hex encodings, but judge the entropy of what they carry
        if len(value) >= 43:
            raw = base64.urlsafe_b64decode(value + b"=" * (-len(value) % 4))
    except (binascii.Error, ValueError):
        raw = value
    if len(value) < MIN_SECRET_BYTES:
        raise ConfigError(f"{name} is too short: use at least {MIN_SECRET_BYTES} random bytes")
    if len(set(raw)) < 12 or value.lower() in {b"changeme" * 4, b"secret" * 6}:
        raise ConfigError(f"{name} is weak (too few distinct bytes): generate a random one")


def new_secret() -> bytes:
    return secrets.token_urlsafe(48).encode()


def _int(env: Mapping[str, str], name: str, default: int, *, minimum: int | None = None) -> int:
    raw = env.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {raw!r}") from None
    if minimum is not None and value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {value}")
    return value


#: R-RET-01: the Settings field of each PRIVACY_HUB_RETENTION_<STORE>_DAYS variable
RETENTION_VARIABLES = {
    "retention_audit_days": "PRIVACY_HUB_RETENTION_AUDIT_DAYS",
    "retention_requests_days": "PRIVACY_HUB_RETENTION_REQUESTS_DAYS",
    "retention_exports_days": "PRIVACY_HUB_RETENTION_EXPORTS_DAYS",
    "retention_tokens_days": "PRIVACY_HUB_RETENTION_TOKENS_DAYS",
    "retention_outbox_days": "PRIVACY_HUB_RETENTION_OUTBOX_DAYS",
    "retention_check_log_days": "PRIVACY_HUB_RETENTION_CHECK_LOG_DAYS",
    "retention_idempotency_days": "PRIVACY_HUB_RETENTION_IDEMPOTENCY_DAYS",
    "retention_banner_choices_days": "PRIVACY_HUB_RETENTION_BANNER_CHOICES_DAYS",
    "retention_disclosures_days": "PRIVACY_HUB_RETENTION_DISCLOSURES_DAYS",
    "retention_batch_size": "PRIVACY_HUB_RETENTION_BATCH_SIZE",
}


def _retention(env: Mapping[str, str]) -> dict[str, int]:
    return {name: _int(env, variable, int(getattr(Settings, name)), minimum=1)
            for name, variable in RETENTION_VARIABLES.items()}


def _colour(env: Mapping[str, str], name: str, default: str) -> str:
    raw = (env.get(name) or default).strip()
    if not re.fullmatch(r"#[0-9a-fA-F]{6}", raw):
        raise ConfigError(f"{name} must be a colour like #0b5394, got {raw!r}")
    return raw.lower()


def _origins(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    found = []
    for raw in (env.get(name) or "").split(","):
        origin = raw.strip().rstrip("/")
        if not origin:
            continue
        if not re.fullmatch(r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?", origin):
            raise ConfigError(f"{name}: {origin!r} is not an origin like https://shop.example")
        found.append(origin.lower())
    return tuple(found)


def _holidays(env: Mapping[str, str], name: str) -> str | None:
    raw = (env.get(name) or "").strip()
    if not raw:
        return None
    try:
        return normalise_region(raw)
    except UnknownRegion as exc:
        raise ConfigError(f"{name}: {exc}") from None


def _float(env: Mapping[str, str], name: str, default: float, *,
           minimum: float = 0.0) -> float:
    raw = env.get(name)
    if raw in (None, ""):
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number of seconds, got {raw!r}") from None
    if not value >= minimum or value == float("inf"):
        raise ConfigError(f"{name} must be a finite number of seconds, at least {minimum}")
    return value


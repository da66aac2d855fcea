"""Answers to access (Art. 15) and portability (Art. 20) requests.

A ZIP with ``data.json`` (everything held, decrypted), one CSV per table, and
``information.json`` (the Art. 15(1)(a)-(h) items, drawn from the registries). The file
is encrypted at rest under a random key, reachable by the subject through a signed link
for 7 days, and deleted after 30.
"""

from __future__ import annotations

import base64
import csv
import functools
import hashlib
import hmac
import io
import json
import os
import zipfile
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import jinja2
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

import audit
from audit.clock import rfc3339, utcnow
from consent import ledger_reads
from consent import purposes as registry
from consent.models import ConsentState, Receipt
from dsar.models import DataSubjectRequest, RequestSystem, system_data_label
from privacy_hub.hub import Hub
from privacy_hub.jobs import outbox
from privacy_hub.models import ExportFile, System
from privacy_hub.vault import crypto, tc_strings
from privacy_hub.vault.models import CustomerEvent

LINK_TTL = timedelta(days=7)
#: the file is deleted this long after it was made (PRIVACY_HUB_RETENTION_EXPORTS_DAYS;
#: privacy_hub/retention/policies.py)
def keep_for(hub: Hub) -> timedelta:
    return timedelta(days=hub.settings.retention_exports_days)


EXPORT_DELETE = "export_delete"
RIGHTS = {
    "access": "Art. 15: a copy of your data and this information, free of charge",
    "rectification": "Art. 16: have inaccurate data corrected and incomplete data completed",
    "erasure": "Art. 17: have your data erased",
    "restriction": "Art. 18: have processing restricted",
    "portability": "Art. 20: receive the data you provided in a machine-readable format",
    "objection": "Art. 21: object to processing on legitimate interests, and to direct "
                 "marketing at any time",
    "withdraw_consent": "Art. 7(3): withdraw consent at any time, as easily as you gave it",
}
COMPLAINT = ("You may lodge a complaint with a supervisory authority (Art. 77 GDPR), in "
             "particular in the member state where you live or work, and seek a judicial "
             "remedy (Art. 79).")


class ExportGone(Exception):
    """The export was deleted after its retention period, or never built."""


def _interaction_events(hub: Hub, session: Session, customer_id: str,
                        purposes: set[str] | None) -> list[dict[str, Any]]:
    """The customer's interaction events (POST /api/v1/events), decrypted, oldest first;
    ``purposes``: only those of these purposes."""
    rows = session.scalars(select(CustomerEvent).where(CustomerEvent.customer_id == customer_id)
                           .order_by(CustomerEvent.occurred_at))
    key = hub.keyring.data_key(session, customer_id)
    out = []
    for row in rows:
        if purposes is not None and row.purpose not in purposes:
            continue
        payload = json.loads(key.open("customer_events", "payload_ct", row.id, row.payload_ct))
        out.append({"id": row.id, "type": payload["type"], "purpose": row.purpose,
                    "occurred_at": rfc3339(row.occurred_at), "properties": payload["properties"]})
    return out


def collect(hub: Hub, session: Session, req: DataSubjectRequest, *, portability: bool
            ) -> dict[str, Any]:
    """Everything held about the subject (portability: only what they provided, Art. 20)."""
    if req.customer_id is None:
        raise ExportGone("nobody was identified for this request")
    cid = req.customer_id
    row = hub.vault.get_row(session, cid)
    profile = hub.vault.profile(session, row)
    consents = ledger_reads.history(session, cid, hub.proof)
    receipts = {r.id: r.jws for r in session.scalars(select(Receipt).where(Receipt.customer_id == cid))}
    for event in consents:
        event["receipt_jws"] = receipts.get(event["receipt_id"])
    allowed_bases = {"consent", "contract"}
    purposes = {p.key for p in registry.all_purposes(session)
                if not portability or str(p.legal_basis) in allowed_bases}
    if portability:
        # Art. 20: what the subject provided; inferred attributes stay in the access export.
        profile = {k: v for k, v in profile.items() if k != "attributes"}
    systems = []
    for part in session.scalars(select(RequestSystem).where(RequestSystem.request_id == req.id)):
        data = None
        if part.data_ct:
            data = json.loads(hub.vault.keyring.data_key(session, cid).open(
                "requests", "details_ct", system_data_label(req.id, part.system_id),
                part.data_ct))
        systems.append({"system": part.system, "status": part.status, "data": data})
    requests = [{"id": r.id, "type": r.type, "status": r.status,
                 "received_at": rfc3339(r.received_at), "due_at": rfc3339(r.due_at),
                 "completed_at": rfc3339(r.completed_at)}
                for r in session.scalars(select(DataSubjectRequest)
                                         .where(DataSubjectRequest.customer_id == cid)
                                         .order_by(DataSubjectRequest.received_at))]
    data = {
        "generated_at": rfc3339(utcnow()), "request_id": req.id,
        "kind": "portability" if portability else "access",
        "profile": profile, "consents": consents,
        "events": _interaction_events(hub, session, cid, purposes if portability else None),
        "requests": requests, "downstream_systems": systems,
        # R-SIG-03: the CMP's TC strings, verbatim; consent choices the subject gave, so
        # in the portability export too, as their consent decisions are.
        "tc_strings": tc_strings.for_export(hub.vault, session, cid),
    }
    if not portability:
        # Art. 16: statements completing the data are part of what is held about them.
        data["supplementary_statements"] = [
            {k: v for k, v in s.items() if k != "customer_id"}
            for s in hub.vault.statements(session, cid)]
    return data


def information(hub: Hub, session: Session, customer_id: str) -> dict[str, Any]:
    """Art. 15(1)(a)-(h), tailored to this customer's actual processing."""
    states = {s.purpose: s.status for s in session.scalars(
        select(ConsentState).where(ConsentState.customer_id == customer_id))}
    applied = [p for p in registry.all_purposes(session)
               if not p.needs_consent or states.get(p.key) == "granted"]
    systems = sorted(s.name for s in session.scalars(select(System)))
    return {
        "confirmation": True,
        "controller": {"name": hub.settings.controller_name,
                       "contact": hub.settings.controller_email,
                       "dpo": hub.settings.dpo_email or hub.settings.controller_email},
        "purposes": [{"purpose": p.key, "title": p.title, "description": p.description,
                      "legal_basis": str(p.legal_basis), "legitimate_interest": p.lia_ref}
                     for p in applied],
        "categories": sorted({c for p in applied for c in p.data_categories}),
        "recipients": sorted({r for p in applied for r in p.recipients} | set(systems)),
        "retention": [{"purpose": p.key, "period": f"{p.retention_days} days"} for p in applied],
        "rights": RIGHTS,
        "complaint": COMPLAINT,
        "source": "collected from you, through the shop and its services",
        "automated_decisions": "none: no decision with legal or similarly significant effect "
                               "is based solely on automated processing",
        "transfers": "none outside the EU/EEA",
    }


#: the columns of each table's CSV, so that one without rows still has its header row: a
#: standard parser reads every file of the export alike (R-PORT-01). A key a row has
#: beyond these becomes a column too; the header is sorted.
CSV_COLUMNS: dict[str, tuple[str, ...]] = {
    "consents": ("id", "purpose", "purpose_version", "event_type", "granted", "status",
                 "consent_type", "source", "collection_method", "notice_version",
                 "notice_language", "notice_sha256", "evidence", "evidence_sha256",
                 "evidence_purged_at", "evidence_purge_reason", "collected_at", "recorded_at",
                 "expires_at", "actor", "receipt_id", "receipt_jws"),
    "tc_strings": ("id", "tc_string", "tcf_version", "cmp_id", "cmp_version",
                   "consent_language", "vendor_list_version", "tcf_policy_version",
                   "tc_created_at", "tc_updated_at", "collected_at", "recorded_at",
                   "recorded_by"),
    "events": ("id", "type", "purpose", "occurred_at", "properties"),
    "requests": ("id", "type", "status", "received_at", "due_at", "completed_at"),
    "downstream_systems": ("system", "status", "data"),
    "supplementary_statements": ("id", "concerns", "text", "added_at", "added_by"),
}


def _csv(rows: list[dict[str, Any]], columns: tuple[str, ...] = ()) -> str:
    """The rows as CSV with a header row, always: ``columns`` and every key of a row."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=sorted({*columns, *(k for r in rows for k in r)}))
    writer.writeheader()
    for r in rows:
        writer.writerow({k: json.dumps(v, ensure_ascii=False) if isinstance(v, dict | list)
                         else v for k, v in r.items()})
    return out.getvalue()


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True)


@functools.cache
def _summary_template() -> jinja2.Template:
    env = jinja2.Environment(loader=jinja2.PackageLoader("privacy_hub", "templates"),
                             autoescape=True, trim_blocks=True, lstrip_blocks=True)
    env.filters["tojson_pretty"] = _pretty
    env.filters["tojson_compact"] = functools.partial(json.dumps, ensure_ascii=False)
    return env.get_template("exports/index.html")


def build_zip(data: dict[str, Any], info: dict[str, Any]) -> bytes:
    """The archive: ``index.html`` (a readable summary, R-ACC-04), ``data.json`` and
    ``information.json`` (everything, machine-readable) and one CSV per table."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("index.html", _summary_template().render(data=data, info=info))
        zf.writestr("data.json", json.dumps(data, indent=2, ensure_ascii=False))
        zf.writestr("information.json", json.dumps(info, indent=2, ensure_ascii=False))
        zf.writestr("profile.csv", _csv([data["profile"]]))
        for table, columns in CSV_COLUMNS.items():
            if table in data:
                zf.writestr(f"{table}.csv", _csv(data[table], columns))
    return buf.getvalue()


class Exports:
    """Builds, stores and serves exports; implements dsar.ports.Exporter."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    def _folder(self) -> Path:
        """The instance's exports folder, readable by the hub's user only."""
        folder = self.hub.settings.instance_path / "exports"
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        return folder

    def _app_aead(self, session: Session) -> AESGCM:
        """The hub's app-secrets key, which wraps each export's own key."""
        return AESGCM(self.hub.keyring.hub_key(session, "app_secrets"))

    def build(self, session: Session, *, request_id: str, customer_id: str,
              portability: bool) -> None:
        """Build the ZIP, store it encrypted, and mail the subject a signed link to it."""
        req = session.get(DataSubjectRequest, request_id)
        if req is None:
            raise ExportGone(request_id)
        archive = build_zip(collect(self.hub, session, req, portability=portability),
                            information(self.hub, session, customer_id))
        key = os.urandom(32)
        name = f"{request_id}.zip.enc"
        blob = crypto.wrap(AESGCM(key), archive, f"export|{request_id}".encode())
        path = self._folder() / name
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(blob)
            fh.flush()
            os.fsync(fh.fileno())
        now = utcnow()
        delete_at = now + keep_for(self.hub)
        session.merge(ExportFile(
            request_id=request_id, customer_id=customer_id, file=name,
            wrapped_key=crypto.wrap(self._app_aead(session), key, f"export-key|{request_id}".encode()),
            size=len(archive), created_at=now, link_expires_at=now + LINK_TTL,
            delete_at=delete_at, deleted_at=None))
        outbox.enqueue(session, EXPORT_DELETE, {"request_id": request_id}, run_at=delete_at)
        outbox.enqueue_mail(session, template="request_completed", customer_id=customer_id,
                            data={"request_id": request_id, "expires_at": rfc3339(now + LINK_TTL)},
                            secrets={"link": self.link(session, request_id, now + LINK_TTL)})
        audit.record(session, actor=audit.Actor("job", "exports"), action="export.built",
                     customer_id=customer_id,
                     details={"request_id": request_id, "bytes": len(archive),
                              "portability": portability})

    def read(self, session: Session, request_id: str) -> bytes:
        """The decrypted ZIP of a request's export; ExportGone once it is deleted."""
        row = session.get(ExportFile, request_id)
        if row is None or row.deleted_at is not None:
            raise ExportGone(request_id)
        key = crypto.unwrap(self._app_aead(session), row.wrapped_key, f"export-key|{request_id}".encode())
        blob = (self._folder() / row.file).read_bytes()
        return crypto.unwrap(AESGCM(key), blob, f"export|{request_id}".encode())

    def delete_due(self, session: Session, now: datetime, *, limit: int | None = None) -> int:
        """Delete the exports past their retention (file and key), at most ``limit``; how
        many. An export made before the period was shortened goes when the new one ends."""
        due = session.scalars(select(ExportFile).where(
            ExportFile.deleted_at.is_(None),
            or_(ExportFile.delete_at <= now, ExportFile.created_at <= now - keep_for(self.hub)))
            .order_by(ExportFile.request_id).limit(limit)).all()
        for row in due:
            (self._folder() / row.file).unlink(missing_ok=True)
            row.deleted_at = now
            row.wrapped_key = b""
            audit.record(session, actor=audit.Actor("job", "exports"), action="export.deleted",
                         customer_id=row.customer_id, details={"request_id": row.request_id})
        return len(due)

    # -- the subject's signed link ------------------------------------------------------
    def _mac(self, session: Session, message: bytes) -> bytes:
        secret = self.hub.keyring.hub_key(session, "app_secrets")
        return hmac.new(secret, b"export-link|" + message, hashlib.sha256).digest()[:20]

    def link(self, session: Session, request_id: str, expires: datetime) -> str:
        """The subject's download link, signed with the hub's key, valid until ``expires``."""
        message = f"{request_id}|{int(expires.timestamp())}".encode()
        token = base64.urlsafe_b64encode(message + b"|" + self._mac(session, message)).decode()
        return f"{self.hub.settings.base_url}/exports/{token.rstrip('=')}"

    def request_for_token(self, session: Session, token: str, now: datetime) -> str:
        """The request id of a valid, unexpired link; ExportGone otherwise."""
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
            message, mac = raw[:-21], raw[-20:]
            request_id, expires = message.decode().split("|")
        except (ValueError, UnicodeDecodeError):
            raise ExportGone("malformed link") from None
        if not hmac.compare_digest(mac, self._mac(session, message)) or raw[-21:-20] != b"|":
            raise ExportGone("link does not verify")
        if int(expires) < now.timestamp():
            raise ExportGone("link expired")
        return request_id

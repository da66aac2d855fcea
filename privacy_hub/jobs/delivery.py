"""The jobs that carry something out of the hub: a signed webhook to a downstream
system, a mail to a customer or to staff."""

from __future__ import annotations

import http.client
import socket
import ssl
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import urlsplit

from sqlalchemy import Table, and_, bindparam, select

import audit
from audit.clock import utcnow
from audit.prepared import Prepared
from privacy_hub import languages
from privacy_hub.db import driver_reader, transaction
from privacy_hub.jobs import mail, webhooks
from privacy_hub.jobs.handler import (
    ClaimedJob,
    JobCancelled,
    JobContext,
    JobFailed,
    group_committer,
)
from privacy_hub.models import System
from privacy_hub.rights import disclosures
from privacy_hub.vault.cells import TABLE, decode_value
from privacy_hub.vault.errors import CustomerNotFound, KeyDestroyed
from privacy_hub.vault.keystore import DEFAULT_CLASS, CustomerKey
from privacy_hub.vault.models import Customer

if TYPE_CHECKING:
    from privacy_hub.hub import Hub

MAILER_ACTOR = audit.Actor("job", "mailer")
_MAX_RESPONSE = 64 * 1024


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req: Any, fp: Any, code: int, msg: str, headers: Any,
                         newurl: str) -> None:
        return None  # a redirect is an answer ("HTTP 302"), not a delivery


_OPENER = urllib.request.build_opener(_NoRedirects)


def _describe(reason: object) -> str:
    """A network error in words that carry no data: for ``last_error`` and logs."""
    if isinstance(reason, TimeoutError):
        return "timeout"
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused"
    if isinstance(reason, ConnectionResetError):
        return "connection reset"
    if isinstance(reason, ssl.SSLCertVerificationError):
        return "TLS certificate not trusted"
    if isinstance(reason, ssl.SSLError):
        return "TLS error"
    if isinstance(reason, socket.gaierror):
        return "host name not found"
    if isinstance(reason, OSError):
        return f"connection error ({type(reason).__name__})"
    return "connection error"


def post(url: str, body: bytes, headers: dict[str, str], *, timeout: float) -> int:
    """POST ``body``; return the 2xx status or raise JobFailed saying what went wrong."""
    if urlsplit(url).scheme not in ("http", "https"):
        raise JobCancelled("the webhook URL is not http(s)")
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310 - scheme checked above
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            response.read(_MAX_RESPONSE)
            status = int(response.status)
    except urllib.error.HTTPError as exc:
        exc.close()
        raise JobFailed(f"HTTP {exc.code}") from None
    except urllib.error.URLError as exc:
        raise JobFailed(_describe(exc.reason)) from None
    except http.client.HTTPException as exc:
        raise JobFailed(f"invalid HTTP response ({type(exc).__name__})") from None
    except OSError as exc:
        raise JobFailed(_describe(exc)) from None
    if not 200 <= status < 300:
        raise JobFailed(f"HTTP {status}")
    return status


def deliver_webhook(context: JobContext, job: ClaimedJob, payload: dict[str, Any]) -> None:
    """POST the signed event to its system's webhook URL."""
    hub = context.hub
    with hub.read_sessions() as session:
        system = session.get(System, job.system_id) if job.system_id else None
        if system is None:
            raise JobCancelled("the system was removed")
        if system.disabled_at is not None:
            raise JobCancelled("the system is disabled")
        if not system.webhook_url:
            raise JobCancelled("the system has no webhook URL")
        url, secret, name = system.webhook_url, hub.systems.webhook_secret(system), system.name
    # The session is closed: no transaction is held open while posting.
    event_id = job.event_id or job.id
    body = webhooks.body(event_id, payload["type"], payload["created_at"], payload["data"])
    headers = webhooks.headers(secret, body, event_id, timestamp=int(time.time()))
    post(url, body, headers, timeout=context.timeout)
    if job.customer_id:
        # R-ACC-03: the system now has what the event says about the customer. (A crash
        # before this commit loses the row; the job then runs again and writes it then.)
        with transaction(hub.sessions) as session:
            disclosures.record_webhook(session, customer_id=job.customer_id, system=name,
                                       event_type=payload["type"], data=payload["data"],
                                       at=utcnow())


def send_mail(context: JobContext, job: ClaimedJob, payload: dict[str, Any]) -> None:
    """Compose the mail in its recipient's language; the customer's address (and locale)
    is decrypted only now, and the read audited."""
    hub = context.hub
    customer_id = payload.get("customer_id")
    data = dict(payload.get("data", {}))
    # The language of the page the person asked from wins, then their profile's, then a
    # fallback (the language a request was made in: R-DSAR-02).
    asked_in = data.pop("locale", None)
    fallback = data.pop("fallback_locale", None)
    to: str | None = payload.get("to_staff")
    language = languages.choose(asked_in, fallback)
    if customer_id:
        recipient = customer_recipient(hub, customer_id)
        to, language = recipient.email, languages.choose(asked_in, recipient.locale, fallback)
    if not to:
        raise JobCancelled("the mail has no recipient")
    # values the sender knew in several languages (a purpose's title): the mail's own
    for name, by_language in data.pop("translated", {}).items():
        if language in by_language:
            data[name] = by_language[language]
    settings = hub.settings
    values = {**data, **payload.get("secrets", {}), "base_url": settings.base_url}
    composed = mail.compose(payload["template"], to=to, sender=settings.mail_from,
                            context=values, language=language)
    try:
        context.mailer.send(composed, job_id=job.id)
    except mail.MailError as exc:
        raise JobFailed(str(exc)) from None


@dataclass(frozen=True)
class Recipient:
    """Where a customer's mail goes, and the language their profile names (if any)."""

    email: str
    locale: str | None


def customer_recipient(hub: Hub, customer_id: str) -> Recipient:
    """Decrypt a customer's address and locale to send them a mail, in one audited read."""
    appender = group_committer(hub)
    if appender is not None and hub.keystore_engine is hub.engine:
        found = _recipient_on_reader(hub, appender, customer_id)
        if found is not None:
            return found
    vault = hub.vault
    with transaction(hub.sessions) as session:
        try:
            row = vault.get_row(session, customer_id)
            if row.status == "erased":
                raise JobCancelled("the customer was erased")
            profile = vault.read(session, customer_id, actor=MAILER_ACTOR,
                                 only=list(_RECIPIENT_FIELDS))
        except CustomerNotFound:
            raise JobCancelled("no such customer") from None
        except KeyDestroyed:
            raise JobCancelled("the customer was erased") from None
    return _recipient(profile.get("email"), profile.get("locale"))


_RECIPIENT_FIELDS = ("email", "locale")
_CUSTOMERS = cast(Table, Customer.__table__)
_KEYS = cast(Table, CustomerKey.__table__)
# The row, its two cells and its wrapped data key in one read (key store in the database).
_RECIPIENT_RAW = Prepared(
    select(_CUSTOMERS.c.status, _CUSTOMERS.c.email_ct, _CUSTOMERS.c.locale_ct,
           _KEYS.c.dek_version, _KEYS.c.kek_version, _KEYS.c.wrapped)
    .select_from(_CUSTOMERS.outerjoin(_KEYS, and_(_KEYS.c.customer_id == _CUSTOMERS.c.id,
                                                  _KEYS.c.key_class == DEFAULT_CLASS)))
    .where(_CUSTOMERS.c.id == bindparam("customer_id")))


def _recipient_on_reader(hub: Hub, appender: audit.Appender,
                         customer_id: str) -> Recipient | None:
    """customer_recipient's read on a driver connection without a transaction (as the
    request hot paths read), its audit entry group-committed before it returns; None when
    the key that wraps the customer's data key is not loaded here (the session's path
    loads it)."""
    engine = hub.read_sessions.kw["bind"]  # read_only(hub.engine): no write lock
    with driver_reader(engine) as (cursor, dialect):
        row = _RECIPIENT_RAW.execute(cursor, dialect, {"customer_id": customer_id}).fetchone()
    if row is None:
        raise JobCancelled("no such customer")
    status, email_ct, locale_ct, dek_version, kek_version, wrapped = row
    if status == "erased" or wrapped is None:
        raise JobCancelled("the customer was erased")
    key = hub.keyring.unwrap_row(customer_id, DEFAULT_CLASS, dek_version, kek_version, wrapped)
    if key is None:
        return None
    values = {name: None if blob is None else decode_value(
                  name, key.open(TABLE, f"{name}_ct", customer_id, bytes(blob)))
              for name, blob in (("email", email_ct), ("locale", locale_ct))}
    # As the vault's audited read (Vault.read with only=...), durable before the mail.
    appender.append([audit.entry(MAILER_ACTOR, "customer.read", customer_id,
                                 {"fields": sorted(_RECIPIENT_FIELDS)})])
    return _recipient(values["email"], values["locale"])


def _recipient(email: Any, locale: Any) -> Recipient:
    if not email:
        raise JobCancelled("the customer has no email address")
    return Recipient(str(email), locale if isinstance(locale, str) else None)

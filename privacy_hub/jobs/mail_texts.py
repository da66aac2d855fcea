"""What each mail says, in English and German: its subject and its paragraphs.

Every sentence is a msgid of the pages' Babel catalogue (privacy_hub/translations),
marked with ``N_`` for extraction and translated when the mail is rendered, with
babel.support.Translations (no Flask in the worker). Placeholders such as ``{{ link }}``
stay inside the msgids so a translation can move them. Each paragraph is rendered once
as plain text; the HTML part is built from the same paragraphs, escaped, so no sentence
exists twice.
"""

from __future__ import annotations

import functools
import gettext
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from babel.dates import (
    format_date,
    format_datetime,
    get_date_format,
    get_datetime_format,
    get_time_format,
)
from babel.support import Translations
from jinja2 import Environment, StrictUndefined
from jinja2 import Template as JinjaTemplate
from markupsafe import Markup, escape

from privacy_hub.jobs.mail_parts import (
    ACKNOWLEDGEMENT,
    FOOTER,
    HELLO,
    N_,
    Link,
    Paragraph,
    Template,
    When,
)
from privacy_hub.jobs.notice_texts import FIELD_LABELS, NOTICE_TEMPLATES
from privacy_hub.languages import DEFAULT

__all__ = [
    "FOOTER",
    "HELLO",
    "N_",
    "TEMPLATES",
    "Link",
    "Paragraph",
    "Template",
    "When",
    "render",
]

TRANSLATIONS = Path(__file__).resolve().parents[1] / "translations"


TEMPLATES: dict[str, Template] = {
    # Double opt-in (DESIGN.md "Consent and the gate"): data.purpose_title, secrets.token.
    "consent_confirmation": Template(
        subject=N_("Please confirm: {{ purpose_title }}"),
        paragraphs=(
            HELLO,
            N_("please confirm that you agree to: {{ purpose_title }}."),
            N_("Open this link to confirm:"),
            Link(N_("Confirm")),
            When("expires_at", N_("The link works until {{ expires_at }}.")),
            N_("If you did not ask for this, ignore this message; nothing changes."),
        ),
        link="{{ base_url }}/consent/confirm?token={{ token | urlencode }}",
    ),
    # Portal sign-in (single use, 15 minutes): secrets.token; the link carries it in the
    # query string, which the access log never records.
    "portal_sign_in": Template(
        subject=N_("Your sign-in link"),
        paragraphs=(
            HELLO,
            N_("open this link to see and manage your data:"),
            Link(N_("Sign in to see and manage your data")),
            N_("It works once, for {{ minutes }} minutes. If you did not ask for it, ignore "
               "this message; nobody can sign in without it."),
        ),
        link="{{ base_url }}/portal/sign-in/confirm?token={{ token | urlencode }}",
    ),
    # The same request for an address that belongs to no customer: only the mailbox's
    # owner learns that (no account enumeration on the page or in its timing).
    "portal_no_account": Template(
        subject=N_("Your sign-in request"),
        paragraphs=(
            HELLO,
            N_("someone asked to sign in to the privacy portal with this address, but we "
               "hold no customer account under it. If you shop with us under another "
               "address, ask for a link with that one."),
            N_("If it was not you, ignore this message."),
        ),
    ),
    # Identity check for a data subject request: data.request_id, data.request_type,
    # secrets.token (or a ready secrets.link); with data.received_at and data.due_at it is
    # the request's acknowledgement too (R-DSAR-02).
    "request_verification": Template(
        subject=N_("Confirm your privacy request"),
        paragraphs=(
            HELLO,
            N_("we received a request ({{ request_type }}) for the data we hold about this "
               "address. Open this link to confirm it was you:"),
            Link(N_("Confirm it was me")),
            ACKNOWLEDGEMENT,
            N_("If you did not make this request, ignore this message."),
        ),
        link="{{ base_url }}/requests/{{ request_id | urlencode }}/verify?token={{ token | urlencode }}",
    ),
    # R-DSAR-05, Art. 11(2): a request for an address no customer has. Only the mailbox's
    # owner reads this (the caller's answer is the same as for a customer): no customer is
    # known under it; they may ask again with other details. data.closes_at (a date); the
    # acknowledgement's data.request_type, received_at and due_at (R-DSAR-02).
    "request_no_account": Template(
        subject=N_("Your privacy request"),
        paragraphs=(
            HELLO,
            N_("we received a privacy request for the data we hold about this email "
               "address, but we hold no customer account under it, so we cannot tell whose "
               "data the request is about."),
            ACKNOWLEDGEMENT,
            N_("If you shop with us under another email address, please make your request "
               "again with that address, or give us your phone number or an order number: "
               "reply to this message, or ask our customer service."),
            N_("If we hear nothing from you by {{ closes_at }}, we close this request."),
            N_("If you did not make this request, ignore this message."),
        ),
    ),
    # Art. 12(3): the subject is told of an extension and why: data.due_at, data.reason.
    "request_extended": Template(
        subject=N_("Your privacy request needs more time"),
        paragraphs=(
            HELLO,
            N_("we need more time to complete your privacy request. The new deadline is "
               "{{ due_at }}."),
            N_("Why: {{ reason }}"),
        ),
    ),
    # Art. 12(4): the ground (data.ground, a RejectionGround) and the DPO's reason
    # (data.reason), the right to complain and to a judicial remedy; Art. 12(5): no fee.
    "request_rejected": Template(
        subject=N_("About your privacy request"),
        paragraphs=(
            HELLO,
            N_("we cannot act on your privacy request."),
            When("ground", N_("The ground for our decision: {{ ground }}.")),
            N_("Why: {{ reason }}"),
            N_("You have the right to lodge a complaint with a data protection supervisory "
               "authority, in particular in the EU member state where you live or work, and "
               "to seek a judicial remedy (Art. 77 and 79 GDPR)."),
            N_("Privacy requests are free of charge: we asked for no fee, and we never do."),
        ),
    ),
    # Access/portability answer ready: secrets.link (signed, expiring), data.expires_at.
    "request_completed": Template(
        subject=N_("Your data is ready to download"),
        paragraphs=(
            HELLO,
            N_("the copy of your data you asked for is ready. Download it here (the link "
               "works until {{ expires_at }}):"),
            Link(N_("Download it")),
            N_("The file is kept for 30 days, then deleted."),
        ),
    ),
    # Art. 18(3): the subject is told before a restriction is lifted: data.note.
    "restriction_lifting": Template(
        subject=N_("The restriction of your data is being lifted"),
        paragraphs=(
            HELLO,
            N_("the restriction of processing of your personal data that you asked for is "
               "being lifted."),
            "{{ note }}",
            N_("If you disagree, reply to this message or use your right to object."),
        ),
    ),
    # R-RET-02: an inactive customer's account is erased on data.erase_on (a date) unless
    # they keep it: secrets.token signs the one-time "keep my account" link.
    "inactivity_notice": Template(
        subject=N_("Your customer account will be deleted on {{ erase_on }}"),
        paragraphs=(
            HELLO,
            N_("you have not used your customer account with us for a long time. We keep "
               "personal data only as long as we need it, so we will delete your account "
               "and the data we hold about you on {{ erase_on }}."),
            N_("If you want to keep your account, open this link before then:"),
            Link(N_("Keep my account")),
            N_("Signing in to your privacy settings or shopping with us keeps it too. If you "
               "do nothing, your account is deleted; only records the law obliges us to "
               "keep, such as invoices, are kept until that duty ends."),
        ),
        link="{{ base_url }}/portal/keep?token={{ token | urlencode }}",
    ),
    # To the DPO (PRIVACY_HUB_DPO_EMAIL): data.request_id, data.request_type, data.due_at.
    # No link: the console has no request page yet, so the mail says how to read the
    # request through the API.
    # To the DPO (PRIVACY_HUB_DPO_EMAIL) a week before the deadline, and on the day it has
    # passed: data.request_id, data.request_type, data.due_at; a link to the request's
    # console page (ids only: the console asks the DPO to sign in).
    "deadline_reminder": Template(
        subject=N_("Privacy request due {{ due_at }}"),
        paragraphs=(
            N_("The {{ request_type }} request {{ request_id }} is due {{ due_at }} "
               "(Art. 12(3) GDPR)."),
            Link(N_("Open it in the privacy console")),
        ),
        link="{{ base_url }}/console/requests/{{ request_id | urlencode }}",
    ),
    "deadline_overdue": Template(
        subject=N_("Privacy request overdue since {{ due_at }}"),
        paragraphs=(
            N_("The {{ request_type }} request {{ request_id }} is overdue: it was due "
               "{{ due_at }} (Art. 12(3) GDPR)."),
            Link(N_("Open it in the privacy console")),
        ),
        link="{{ base_url }}/console/requests/{{ request_id | urlencode }}",
    ),
    **NOTICE_TEMPLATES,
}

#: request types as a sentence names them (the workflow's values are English keys)
REQUEST_TYPES = {
    # TRANSLATORS: a kind of privacy request, named inside a sentence of a mail
    "privacy": N_("privacy"), "access": N_("access"), "portability": N_("portability"),
    "erasure": N_("erasure"), "rectification": N_("rectification"),
    "restriction": N_("restriction"), "objection": N_("objection"),
}

#: why a request was refused (dsar.workflow.RejectionGround), as the sentence says it;
#: "other" has no sentence: the reason says it all
REJECTION_GROUNDS = {
    "manifestly_unfounded": N_("the request is manifestly unfounded (Art. 12(5) GDPR)"),
    "excessive": N_("the request is excessive, in particular because it repeats earlier "
                    "requests (Art. 12(5) GDPR)"),
    "identity_not_confirmed": N_("we could not confirm that the request comes from the "
                                 "person the data is about (Art. 12(6) GDPR)"),
    "identity_not_found": N_("we could not identify whose data the request is about "
                             "(Art. 11(2) GDPR)"),
}

# Plain text is not HTML: escaping it would corrupt it. The HTML part escapes each
# rendered paragraph as a whole (so a translation may hold any character too).
_TEXT = Environment(autoescape=False, undefined=StrictUndefined)  # noqa: S701


@functools.lru_cache(maxsize=256)
def _compiled(source: str) -> JinjaTemplate:
    return _TEXT.from_string(source)


@functools.cache
def translations(language: str) -> gettext.NullTranslations:
    """The catalogue of ``language`` (English is the msgids themselves)."""
    if language == DEFAULT:
        return gettext.NullTranslations()
    return Translations.load(str(TRANSLATIONS), [language])


def _datetime_pattern(language: str) -> str:
    """The language's long date with its short time, e.g. "23. Dezember 2026, 14:05"."""
    combined = get_datetime_format("long", locale=language)
    return (str(combined).replace("{1}", get_date_format("long", locale=language).pattern)
            .replace("{0}", get_time_format("short", locale=language).pattern))


def format_when(value: Any, language: str, *, with_time: bool) -> Any:
    """An ISO date or RFC 3339 time from a job's payload, written for ``language``
    (times in UTC, said so); anything else is returned as it is."""
    if not isinstance(value, str):
        return value
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return value
    parsed = parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    if not with_time or len(value) == 10:  # a date alone ("2026-12-23") has no time to say
        return format_date(parsed.date(), "long", locale=language)
    return format_datetime(parsed, _datetime_pattern(language) + " '(UTC)'", tzinfo=UTC,
                           locale=language)


#: payload values that are moments: a deadline is a day, a link's end a time of day
_DATES = {"due_at": False, "expires_at": True, "closes_at": False, "received_at": False,
          "erase_on": False}


@dataclass(frozen=True)
class Rendered:
    """A mail's words in one language: subject, plain-text body and HTML body."""

    subject: str
    text: str
    html: str


def render(template: str, values: Mapping[str, Any], language: str,
           link: str | None) -> Rendered:
    """Translate and fill ``template`` for ``language``; ``values`` are plain data."""
    spec = TEMPLATES[template]
    words = translations(language)
    context = dict(values)
    context["link"] = link
    for name, with_time in _DATES.items():
        if name in context:
            context[name] = format_when(context[name], language, with_time=with_time)
    if isinstance(context.get("request_type"), str) and context["request_type"] in REQUEST_TYPES:
        context["request_type"] = words.gettext(REQUEST_TYPES[context["request_type"]])
    if isinstance(context.get("categories"), list):
        context["categories"] = ", ".join(
            words.gettext(FIELD_LABELS[c]) if c in FIELD_LABELS else str(c)
            for c in context["categories"])
    if isinstance(context.get("ground"), str):
        ground = REJECTION_GROUNDS.get(context["ground"])
        context["ground"] = words.gettext(ground) if ground else None

    def say(msgid: str) -> str:
        return _compiled(words.gettext(msgid)).render(context).strip()

    text_parts: list[str] = []
    html_parts: list[Markup] = []
    for paragraph in spec.paragraphs:
        if isinstance(paragraph, When):
            if context.get(paragraph.name) is None:
                continue
            paragraph = paragraph.text
        if isinstance(paragraph, Link):
            if link is None:
                raise ValueError(f"the {template} mail needs a link")
            text_parts.append(link)
            html_parts.append(Markup('<p><a href="{}">{}</a></p>').format(
                link, words.gettext(paragraph.label)))
        else:
            said = say(paragraph)
            text_parts.append(said)
            html_parts.append(Markup("<p>{}</p>").format(
                Markup("<br>").join(escape(line) for line in said.splitlines())))
    footer = words.gettext(FOOTER)
    text = "\n\n".join(text_parts) + "\n\n-- \n" + footer + "\n"
    html = (Markup('<div lang="{}">').format(language) + Markup("").join(html_parts)
            + Markup('<p style="color:#555;font-size:small">{}</p></div>').format(footer))
    return Rendered(" ".join(say(spec.subject).split()), text, str(html))

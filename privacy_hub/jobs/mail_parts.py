"""The parts a mail template is made of (privacy_hub/jobs/mail_texts.py renders them):
the extraction marker, a link, a conditional paragraph, a template, and the sentences
several mails share."""

from __future__ import annotations

from dataclasses import dataclass


def N_(message: str) -> str:
    """Mark a mail sentence for extraction (babel.cfg: ``-k N_``); translated at render time."""
    return message


@dataclass(frozen=True)
class Link:
    """The mail's link: alone on its line in the text part, an anchor with ``label`` in HTML."""

    label: str


@dataclass(frozen=True)
class When:
    """A paragraph shown only when the context holds ``name`` (and it is not None)."""

    name: str
    text: str


Paragraph = str | Link | When


@dataclass(frozen=True)
class Template:
    """A mail: its subject, its paragraphs, and how to build the link it carries."""

    subject: str
    paragraphs: tuple[Paragraph, ...]
    #: builds the link from the context; a ``link`` given in the job's secrets wins
    link: str | None = None


HELLO = N_("Hello,")
FOOTER = N_("This message was sent by the privacy service of the shop.")

#: R-DSAR-02, Art. 12(3): the acknowledgement of a data subject request, in every mail that
#: answers its receipt (data.request_id, request_type, received_at, due_at)
ACKNOWLEDGEMENT = When("due_at", N_(
    "Your request: {{ request_type }}. Reference: {{ request_id }}. Received on "
    "{{ received_at }}. We answer it by {{ due_at }} at the latest (Art. 12(3) GDPR)."))

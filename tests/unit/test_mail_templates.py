"""Mail templates render without a database and link only pages that exist."""

from html import escape as html_escape

import pytest

from privacy_hub.jobs import mail


def test_the_deadline_reminder_names_the_request_and_links_its_console_page() -> None:
    """R-DEAD-03: the DPO is told which request is due, and where to open it."""
    context = {"request_id": "r-1", "request_type": "access", "due_at": "2026-12-23",
               "base_url": "https://hub.example"}
    composed = mail.compose("deadline_reminder", to="dpo@shop.example",
                            sender="privacy@shop.example", context=context)
    assert composed.link == "https://hub.example/console/requests/r-1"
    text = composed.message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    html = composed.message.get_body(("html",)).get_content()  # type: ignore[union-attr]
    for body in (text, html):
        assert "r-1" in body and "December 23, 2026" in body
        assert "https://hub.example/console/requests/r-1" in body
        assert "overdue" not in body
    overdue = mail.compose("deadline_overdue", to="dpo@shop.example",
                           sender="privacy@shop.example", context=context)
    assert overdue.message["Subject"] == "Privacy request overdue since December 23, 2026"
    assert overdue.link == "https://hub.example/console/requests/r-1"


# -- every mail in its recipient's language (English or German) ---------------------------

#: what each template needs, as the hub queues it
CONTEXTS: dict[str, dict[str, str | int]] = {
    "consent_confirmation": {"purpose_title": "Newsletter", "token": "t",
                             "expires_at": "2026-12-01T09:30:00Z"},
    "portal_sign_in": {"minutes": 15, "token": "t"},
    "portal_no_account": {},
    "request_verification": {"request_id": "r-1", "request_type": "access", "token": "t",
                             "received_at": "2026-11-23", "due_at": "2026-12-23"},
    "request_received": {"request_id": "r-1", "request_type": "erasure",
                         "received_at": "2026-11-23", "due_at": "2026-12-23"},
    "request_extended": {"request_id": "r-1", "due_at": "2027-03-31T10:00:00Z",
                         "reason": "many requests"},
    "request_no_account": {"request_id": "r-1", "closes_at": "2027-01-06",
                           "request_type": "access", "received_at": "2026-12-07",
                           "due_at": "2027-01-07"},
    "request_rejected": {"request_id": "r-1", "ground": "excessive",
                         "reason": "the same request three times this week"},
    "request_completed": {"request_id": "r-1", "expires_at": "2026-12-08T10:00:00Z",
                          "link": "https://hub.example/exports/r-1?sig=x"},
    "restriction_lifting": {"note": "the dispute is settled"},
    "inactivity_notice": {"erase_on": "2027-01-06", "token": "t"},
    "deadline_reminder": {"request_id": "r-1", "request_type": "access", "due_at": "2026-12-23"},
    "deadline_overdue": {"request_id": "r-1", "request_type": "access", "due_at": "2026-12-23"},
    "purpose_reconsent": {"purpose_title": "Newsletter", "version": 2,
                          "description": "Weekly offers, now also by text message."},
    "art14_notice": {"source": "partner", "categories": ["email", "first_name"],
                     "purposes": "Newsletter"},
}


def _render(template: str, language: str) -> tuple[str, str, str, str | None]:
    composed = mail.compose(template, to="someone@example.org", sender="privacy@shop.example",
                            context={**CONTEXTS[template], "base_url": "https://hub.example"},
                            language=language)
    message = composed.message
    text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    html = message.get_body(("html",)).get_content()  # type: ignore[union-attr]
    return str(message["Subject"]), text, html, message["Content-Language"]


def _sentences(text: str) -> list[str]:
    """The prose lines of a plain-text body (not links, not the request line)."""
    return [line for line in text.splitlines()
            if line.strip() and line != "-- " and not line.startswith(("http", "GET "))]


def test_every_template_has_a_case_here() -> None:
    assert set(CONTEXTS) == set(mail.TEMPLATES)


@pytest.mark.parametrize("template", sorted(mail.TEMPLATES))
def test_every_mail_is_written_wholly_in_german_for_a_german_recipient(template: str) -> None:
    """No English sentence is left in a German mail: subject, each paragraph, footer."""
    en_subject, en_text, _, _ = _render(template, "en")
    de_subject, de_text, de_html, language = _render(template, "de")
    assert language == "de"
    assert '<div lang="de">' in de_html
    assert de_subject != en_subject
    english = set(_sentences(en_text))
    leftover = [s for s in _sentences(de_text) if s in english
                and s not in ("the dispute is settled",  # the DPO's own note is not translated
                              "Weekly offers, now also by text message.")]  # nor a purpose's
    assert not leftover, leftover
    assert "Diese Nachricht wurde vom Datenschutzdienst des Shops gesendet." in de_text


@pytest.mark.parametrize("template", sorted(mail.TEMPLATES))
def test_the_html_part_says_what_the_text_part_says(template: str) -> None:
    """Each sentence exists once, in the catalogue: both parts are built from it."""
    for language in ("en", "de"):
        _, text, html, _ = _render(template, language)
        for sentence in _sentences(text):
            assert html_escape(sentence, quote=False) in html, (language, sentence)


def test_a_link_is_an_anchor_with_a_translated_label() -> None:
    _, text, html, _ = _render("portal_sign_in", "de")
    assert "https://hub.example/portal/sign-in/confirm?token=t" in text.splitlines()
    assert ('<a href="https://hub.example/portal/sign-in/confirm?token=t">Anmelden, um Ihre '
            "Daten einzusehen und zu verwalten</a>") in html


def test_dates_are_written_for_the_language() -> None:
    """R-DEAD-02: the subject is told the new deadline, in words they read."""
    _, en, _, _ = _render("request_extended", "en")
    _, de, _, _ = _render("request_extended", "de")
    assert "The new deadline is March 31, 2027." in en
    assert "Die neue Frist endet am 31. März 2027." in de
    _, en, _, _ = _render("consent_confirmation", "en")
    _, de, _, _ = _render("consent_confirmation", "de")
    assert "December 1, 2026, 9:30\u202fAM (UTC)" in en
    assert "1. Dezember 2026, 09:30 (UTC)" in de


def test_a_regional_tag_speaks_its_language_and_an_unknown_one_english() -> None:
    assert _render("portal_sign_in", "de-AT")[0] == "Ihr Anmeldelink"
    assert _render("portal_sign_in", "fr-FR")[0] == "Your sign-in link"
    assert _render("portal_sign_in", "fr-FR")[3] == "en"


def test_values_are_escaped_in_html_and_left_alone_in_text() -> None:
    composed = mail.compose("request_rejected", to="a@example.org", sender="p@shop.example",
                            context={"reason": "<b>late</b> & {{ base_url }}",
                                     "base_url": "https://hub.example"}, language="de")
    text = composed.message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    html = composed.message.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert "Begründung: <b>late</b> & {{ base_url }}" in text  # a value is never a template
    assert "Begründung: &lt;b&gt;late&lt;/b&gt; &amp; {{ base_url }}" in html


def test_the_request_type_is_named_in_the_mail_language() -> None:
    _, de, _, _ = _render("deadline_reminder", "de")
    assert "Die Anfrage r-1 (Auskunft) ist am 23. Dezember 2026 fällig" in de


def test_the_rejection_names_the_ground_the_reason_the_remedies_and_no_fee() -> None:
    """R-DSAR-07, Art. 12(4): the subject is told why (ground and justification), and of
    their right to complain to a supervisory authority and to a judicial remedy; R-DSAR-06:
    a refusal, never a fee."""
    subject, text, html, _ = _render("request_rejected", "en")
    assert subject == "About your privacy request"
    assert ("The ground for our decision: the request is excessive, in particular because it "
            "repeats earlier requests (Art. 12(5) GDPR).") in text
    assert "Why: the same request three times this week" in text
    assert "supervisory authority" in text and "judicial remedy" in text
    assert "free of charge" in text and "fee" in html


@pytest.mark.parametrize(("ground", "says"), [
    ("manifestly_unfounded", "manifestly unfounded (Art. 12(5) GDPR)"),
    ("identity_not_confirmed", "(Art. 12(6) GDPR)"),
    ("identity_not_found", "(Art. 11(2) GDPR)"),
])
def test_each_ground_has_its_sentence(ground: str, says: str) -> None:
    composed = mail.compose("request_rejected", to="a@example.org", sender="p@shop.example",
                            context={"reason": "r", "ground": ground,
                                     "base_url": "https://hub.example"})
    text = composed.message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "The ground for our decision:" in text and says in text


def test_another_ground_is_left_to_the_reason() -> None:
    """``other``, and a rejection queued before grounds existed, say only the reason."""
    for context in ({"reason": "r", "ground": "other"}, {"reason": "r"}):
        composed = mail.compose("request_rejected", to="a@example.org", sender="p@shop.example",
                                context={**context, "base_url": "https://hub.example"})
        text = composed.message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
        assert "The ground for our decision" not in text and "Why: r" in text


def test_the_no_account_mail_invites_other_details_and_carries_no_link() -> None:
    """R-DSAR-05, Art. 11(2): the mailbox's owner learns that no account is held under the
    address, may ask again with another address, a phone or an order number, and when the
    request closes; there is nothing to confirm."""
    subject, text, html, _ = _render("request_no_account", "en")
    assert subject == "Your privacy request"
    assert "we hold no customer account under it" in text
    assert "another email address" in text and "phone number" in text
    assert "order number" in text
    assert "If we hear nothing from you by January 6, 2027, we close this request." in text
    assert "http" not in text and "<a " not in html


@pytest.mark.parametrize("template", ["request_verification", "request_received",
                                      "request_no_account"])
def test_every_request_acknowledgement_names_id_type_received_and_due_dates(template: str) -> None:
    """R-DSAR-02: the mail answering a request's receipt says its id, its type, when it
    was received and when it is due, with dates written for the language."""
    _, en, _, _ = _render(template, "en")
    _, de, _, _ = _render(template, "de")
    context = CONTEXTS[template]
    received, due = str(context["received_at"]), str(context["due_at"])
    names = {"access": ("access", "Auskunft"), "erasure": ("erasure", "Löschung")}
    english, german = names[str(context["request_type"])]
    assert f"Your request: {english}. Reference: r-1." in en
    assert f"Ihre Anfrage: {german}. Aktenzeichen: r-1." in de
    assert {"2026-11-23": "November 23, 2026", "2026-12-07": "December 7, 2026"}[received] in en
    assert {"2026-12-23": "December 23, 2026", "2027-01-07": "January 7, 2027"}[due] in en
    assert {"2026-11-23": "23. November 2026", "2026-12-07": "7. Dezember 2026"}[received] in de
    assert {"2026-12-23": "23. Dezember 2026", "2027-01-07": "7. Januar 2027"}[due] in de


def test_the_art14_notice_names_the_source_the_categories_and_the_right_to_object() -> None:
    """R-DEAD-05, Art. 14(1)(d), 14(2)(c),(f): the source, the categories held (in the
    mail's words), the purposes and how to object."""
    _, en, _, _ = _render("art14_notice", "en")
    _, de, _, _ = _render("art14_notice", "de")
    assert "from partner, not from you" in en
    assert "The categories of data we hold about you: Email address, First name." in en
    assert "What we use it for: Newsletter." in en
    assert "object at any time" in en and "https://hub.example/portal/" in en
    assert "von partner erhalten" in de
    assert "E-Mail-Adresse, Vorname" in de
    assert "widersprechen" in de

"""A purpose's title and description in a language, with the default text as fallback
(Art. 12(1) GDPR; consent.purposes.Purpose.text)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from consent.purposes import LegalBasis, Purpose, PurposeText, language_code

GERMAN = PurposeText("Angebote per SMS", "Wir senden Ihnen Angebote per SMS.")


def _purpose(**translations: PurposeText) -> Purpose:
    now = datetime(2026, 12, 1, tzinfo=UTC)
    return Purpose(
        key="marketing.sms", title="Offers by text message",
        description="Send you offers by SMS.", legal_basis=LegalBasis.CONSENT,
        cookie_category=None, fields=("phone",), retention_days=730,
        consent_lifetime_days=None, double_opt_in=False, direct_marketing=True,
        sale_or_sharing=False, version=1, data_categories=("contact data",),
        recipients=("sms-gateway",), special_category=False, soft_opt_in=False, lia_ref=None,
        dpv=None, source_purpose=None, compatibility_ref=None, created_at=now, updated_at=now,
        translations=translations)


@pytest.mark.parametrize("language", ["de", "de-AT", "de_DE", "DE"])
def test_a_german_page_gets_the_german_text_whatever_the_region(language: str) -> None:
    assert _purpose(de=GERMAN).text(language) == GERMAN


@pytest.mark.parametrize("language", ["fr", "en", None, "", "x-klingon"])
def test_a_language_without_a_translation_gets_the_default_text(language: str | None) -> None:
    assert _purpose(de=GERMAN).text(language) == PurposeText("Offers by text message",
                                                             "Send you offers by SMS.")


def test_in_language_changes_only_the_texts_and_public_keeps_the_default() -> None:
    purpose = _purpose(de=GERMAN)
    shown = purpose.in_language("de")
    assert (shown.title, shown.description) == (GERMAN.title, GERMAN.description)
    assert shown.key == purpose.key and shown.version == purpose.version
    public = purpose.public()
    assert public["title"] == "Offers by text message"
    assert public["translations"] == {"de": {"title": GERMAN.title,
                                             "description": GERMAN.description}}
    hash(purpose)  # still usable in sets, whatever its translations


def test_language_codes_are_the_primary_subtag_in_lower_case() -> None:
    assert [language_code(t) for t in ("de-AT", "pt_BR", "EN", "gsw", None, "")] == [
        "de", "pt", "en", "gsw", None, None]

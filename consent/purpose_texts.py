"""What customers read about a purpose in their own language (Art. 12(1) GDPR): the
per-language texts, how a language tag finds them, and the rules a translation keeps."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

#: a translation's key: an ISO 639 language code, lower case, without a region. Pages are
#: chosen per language (de, not de-AT), so a regional text could never be shown.
LANGUAGE_RE = re.compile(r"^[a-z]{2,3}$")
#: the limits of the default text, which every translation keeps too
TITLE_MAX = 200
DESCRIPTION_MAX = 5000
#: languages a purpose may be translated into: bounds the row, not the languages in use
MAX_TRANSLATIONS = 50


@dataclass(frozen=True)
class PurposeText:
    """What customers read about a purpose, in one language."""

    title: str
    description: str


def language_code(tag: str | None) -> str | None:
    """The language of a tag as translations are keyed: ``de-AT`` and ``de_AT`` -> ``de``."""
    if not tag:
        return None
    primary = tag.replace("_", "-").split("-")[0].lower()
    return primary if LANGUAGE_RE.match(primary) else None


def translations_json(value: Mapping[str, Any] | None) -> str:
    """The stored JSON of checked translations (``None`` is none)."""
    texts = {lang: asdict(t) if isinstance(t, PurposeText)
             else {"title": t["title"], "description": t.get("description") or ""}
             for lang, t in (value or {}).items()}
    return json.dumps(texts, ensure_ascii=False, sort_keys=True)


def check_translations(value: Any, default_description: str | None) -> dict[str, list[str]]:
    """Errors of a ``translations`` value, by field (``translations.de.title``). A
    translation is complete: it has a description whenever the default text has one."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        return {"translations": ['an object by language code, e.g. {"de": {"title": "...", '
                                 '"description": "..."}}']}
    if len(value) > MAX_TRANSLATIONS:
        return {"translations": [f"at most {MAX_TRANSLATIONS} languages"]}
    errors: dict[str, list[str]] = {}
    for lang, text in value.items():
        name = f"translations.{str(lang)[:20]}"
        if not isinstance(lang, str) or not LANGUAGE_RE.match(lang):
            errors[name] = ["not a language code: use 2 or 3 lower-case letters (ISO 639), "
                            "e.g. de; regions such as de-AT are refused, not shortened, since "
                            "pages are shown per language"]
            continue
        if isinstance(text, PurposeText):
            text = asdict(text)
        if not isinstance(text, Mapping):
            errors[name] = ["an object with title and description"]
            continue
        title = text.get("title")
        if not isinstance(title, str) or not title.strip() or len(title) > TITLE_MAX:
            errors[f"{name}.title"] = [f"required: 1 to {TITLE_MAX} characters"]
        description = text.get("description")
        if description is not None and (not isinstance(description, str)
                                        or len(description) > DESCRIPTION_MAX):
            errors[f"{name}.description"] = [f"at most {DESCRIPTION_MAX} characters"]
        elif (default_description or "").strip() and not (description or "").strip():
            # A page in this language shows this text alone, so it says all the default
            # says (for consent purposes R-CONSENT-04: what the data is used for).
            errors[f"{name}.description"] = ["required, as the purpose has a description: "
                                             "what the data is used for, in this language"]
        unknown = sorted(str(k)[:20] for k in text if k not in ("title", "description"))
        if unknown:
            errors[f"{name}.{unknown[0]}"] = ["unknown field: a translation has a title and "
                                              "a description"]
    return errors

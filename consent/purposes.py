"""The purpose registry: what personal data is used for, on which legal basis.

A purpose's legal basis is fixed for life (EDPB consent guidelines §6: no switching
the basis after the fact); a new basis is a new purpose. A material change raises
the version, and consents given to an older version stop counting.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

import audit
from audit.clock import utcnow
from consent import dpv as vocabulary
from consent import purpose_record
from consent.errors import Conflict, InvalidInput, UnknownPurpose
from consent.models import PurposeRow, PurposeVersion
from consent.purpose_record import AutomatedDecision, Risk, Transfer
from consent.purpose_texts import (
    PurposeText,
    check_translations,
    language_code,
    translations_json,
)

KEY_RE = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$")
# CNIL 2020-092: tracker consent lasts at most 13 months.
MAX_COOKIE_CONSENT_DAYS = 395


class LegalBasis(StrEnum):
    """GDPR Art. 6(1)(a)-(f)."""

    CONSENT = "consent"
    CONTRACT = "contract"
    LEGAL_OBLIGATION = "legal_obligation"
    VITAL_INTERESTS = "vital_interests"
    PUBLIC_TASK = "public_task"
    LEGITIMATE_INTERESTS = "legitimate_interests"


class CookieCategory(StrEnum):
    """What a tracker is for; only strictly necessary ones need no consent (ePrivacy Art. 5(3))."""

    NECESSARY = "necessary"
    PREFERENCES = "preferences"
    STATISTICS = "statistics"
    MARKETING = "marketing"


@dataclass(frozen=True)
class Purpose:
    """A registered purpose, in its current version."""

    key: str
    title: str
    description: str
    legal_basis: LegalBasis
    cookie_category: str | None
    fields: tuple[str, ...]
    retention_days: int
    consent_lifetime_days: int | None
    double_opt_in: bool
    direct_marketing: bool
    sale_or_sharing: bool
    version: int
    data_categories: tuple[str, ...]
    recipients: tuple[str, ...]
    special_category: bool
    soft_opt_in: bool
    lia_ref: str | None
    dpv: str | None
    source_purpose: str | None
    compatibility_ref: str | None
    created_at: datetime
    updated_at: datetime
    #: title and description by language code; the fields above are the default text
    translations: Mapping[str, PurposeText] = field(default_factory=dict, hash=False)
    #: Art. 15(2), 30(1)(e): transfers to third countries, each with its safeguard
    transfers: tuple[Transfer, ...] = ()
    #: Art. 22, 15(1)(h): the automated decision-making it involves (None: none)
    automated_decisions: AutomatedDecision | None = None
    #: Art. 30(1)(c): whose data it processes
    data_subject_categories: tuple[str, ...] = purpose_record.DEFAULT_SUBJECT_CATEGORIES
    #: Art. 35(1): a high risk needs a DPIA (``dpia_ref``) before the purpose runs
    risk: Risk = Risk.STANDARD
    dpia_ref: str | None = None

    def text(self, language: str | None) -> PurposeText:
        """Title and description in ``language`` (a tag like ``de`` or ``de-AT``), or the
        default text when none is published for it."""
        found = self.translations.get(language_code(language) or "")
        return found if found is not None else PurposeText(self.title, self.description)

    def in_language(self, language: str | None) -> Purpose:
        """This purpose with its title and description in ``language`` (default text as
        fallback): what a page in that language shows. Not for the registry's JSON."""
        shown = self.text(language)
        return replace(self, title=shown.title, description=shown.description)

    @property
    def needs_consent(self) -> bool:
        """Its legal basis is consent: customers grant and withdraw it in the ledger."""
        return self.legal_basis is LegalBasis.CONSENT

    def public(self) -> dict[str, Any]:
        """The API's JSON of the purpose, with its DPV IRIs."""
        data = asdict(self)
        data["legal_basis"] = str(self.legal_basis)
        for name in ("fields", "data_categories", "recipients", "transfers",
                     "data_subject_categories"):
            data[name] = list(data[name])
        data["risk"] = str(self.risk)
        data["translations"] = {lang: asdict(t) for lang, t in sorted(self.translations.items())}
        data["dpv_iri"] = vocabulary.purpose_iri(self.dpv)
        data["dpv_legal_basis"] = vocabulary.LEGAL_BASES[str(self.legal_basis)]
        return data


#: Fields a caller may set on create; ``version`` and timestamps are the registry's.
EDITABLE = (
    "title", "description", "cookie_category", "fields", "retention_days",
    "consent_lifetime_days", "double_opt_in", "direct_marketing", "sale_or_sharing",
    "data_categories", "recipients", "special_category", "lia_ref", "dpv",
    "source_purpose", "compatibility_ref", "soft_opt_in", "translations",
    *purpose_record.FIELDS,
)
#: fixed at creation, like the legal basis: they are the ground the purpose stands on
FIXED = ("soft_opt_in",)
_LIST_FIELDS = ("fields", "data_categories", "recipients")


def from_row(row: PurposeRow) -> Purpose:
    """The Purpose of a stored row."""
    return Purpose(
        key=row.key, title=row.title, description=row.description,
        legal_basis=LegalBasis(row.legal_basis), cookie_category=row.cookie_category,
        fields=tuple(json.loads(row.fields)), retention_days=row.retention_days,
        consent_lifetime_days=row.consent_lifetime_days, double_opt_in=row.double_opt_in,
        direct_marketing=row.direct_marketing, sale_or_sharing=row.sale_or_sharing,
        version=row.version, data_categories=tuple(json.loads(row.data_categories)),
        recipients=tuple(json.loads(row.recipients)), special_category=row.special_category,
        soft_opt_in=row.soft_opt_in,
        lia_ref=row.lia_ref, dpv=row.dpv, source_purpose=row.source_purpose,
        compatibility_ref=row.compatibility_ref, created_at=row.created_at,
        updated_at=row.updated_at,
        translations={lang: PurposeText(t["title"], t["description"])
                      for lang, t in json.loads(row.translations or "{}").items()},
        **purpose_record.loaded(row),
    )


def _check_rules(values: Mapping[str, Any], allowed_fields: Collection[str] | None) -> None:
    """Rules that span fields; raise InvalidInput naming each offending field."""
    errors: dict[str, list[str]] = {}
    basis = values["legal_basis"]
    consent = basis == LegalBasis.CONSENT
    if basis == LegalBasis.LEGITIMATE_INTERESTS and not values.get("lia_ref"):
        errors["lia_ref"] = ["required for legitimate_interests: where the balancing test "
                             "(LIA) is documented"]
    if consent:
        # R-CONSENT-04: consent is informed only if the request says what the data is used
        # for and which data; a consent purpose without them cannot be asked for.
        if not (values.get("description") or "").strip():
            errors["description"] = ["required for consent purposes: what the data is used for, "
                                     "as customers will read it"]
        if not values.get("data_categories"):
            errors["data_categories"] = ["required for consent purposes: the categories of "
                                         "personal data used"]
    if values.get("special_category") and not consent:
        errors["special_category"] = ["special-category data needs explicit consent "
                                      "(legal_basis consent, Art. 9(2)(a))"]
    if values.get("double_opt_in") and not consent:
        errors["double_opt_in"] = ["only for purposes whose legal basis is consent"]
    cookie = values.get("cookie_category")
    if cookie not in (None, CookieCategory.NECESSARY) and not consent:
        errors["cookie_category"] = ["trackers other than strictly necessary ones need "
                                     "consent (ePrivacy Art. 5(3))"]
    lifetime = values.get("consent_lifetime_days")
    if lifetime is not None:
        if not consent:
            errors["consent_lifetime_days"] = ["only for purposes whose legal basis is consent"]
        elif cookie not in (None, CookieCategory.NECESSARY) and lifetime > MAX_COOKIE_CONSENT_DAYS:
            errors["consent_lifetime_days"] = [
                f"tracker consent lasts at most 13 months ({MAX_COOKIE_CONSENT_DAYS} days)"]
    if allowed_fields is not None:
        unknown = sorted(set(values.get("fields") or ()) - set(allowed_fields))
        if unknown:
            errors["fields"] = [f"not a customer field: {', '.join(unknown)}"]
    if values.get("soft_opt_in"):
        problems = []
        if basis != LegalBasis.LEGITIMATE_INTERESTS:
            problems.append("needs legal_basis legitimate_interests (Art. 6(1)(f), Recital 47)")
        if not values.get("direct_marketing"):
            problems.append("is for direct marketing by email: set direct_marketing")
        if values.get("sale_or_sharing"):
            problems.append("covers only the shop's own similar products, never sharing "
                            "with third parties (ePrivacy Art. 13(2))")
        if problems:
            errors["soft_opt_in"] = problems
    errors.update(check_translations(values.get("translations"), values.get("description")))
    errors.update(purpose_record.check(values))
    term = values.get("dpv")
    if term is not None and vocabulary.purpose_term(term) is None:
        errors["dpv"] = ["a purpose term of the W3C Data Privacy Vocabulary, e.g. "
                         "dpv:DirectMarketing (or its IRI, https://w3id.org/dpv#DirectMarketing)"]
    if values.get("source_purpose") and not consent and not values.get("compatibility_ref"):
        errors["compatibility_ref"] = [
            "required when data collected for source_purpose is processed further on a basis "
            "other than consent: where the compatibility assessment (Art. 6(4)) is documented"]
    if values.get("compatibility_ref") and not values.get("source_purpose"):
        errors["source_purpose"] = ["required with compatibility_ref: the purpose the data "
                                    "was collected for"]
    if errors:
        raise InvalidInput(errors)


def _check_source(session: Session, key: str, source: str | None) -> None:
    """A further purpose's source is another registered purpose, and no source chain
    leads back to ``key``."""
    seen = {key}
    while source is not None:
        if source in seen:
            raise InvalidInput({"source_purpose": [
                "must name another purpose; its own source chain must not lead back here"]})
        seen.add(source)
        row = session.get(PurposeRow, source)
        if row is None:
            raise InvalidInput({"source_purpose": [f"no purpose {source!r} is registered"]})
        source = row.source_purpose


def _record_version(session: Session, row: PurposeRow, material: bool) -> None:
    """Keep the purpose as it now is (``PurposeVersion``): a new revision of its version."""
    revision = (session.scalar(select(func.max(PurposeVersion.revision))
                               .where(PurposeVersion.key == row.key,
                                      PurposeVersion.version == row.version)) or 0) + 1
    session.add(PurposeVersion(
        key=row.key, version=row.version, revision=revision, material=material,
        snapshot=json.dumps(from_row(row).public(), default=str, sort_keys=True),
        created_at=row.updated_at))


def create(session: Session, values: Mapping[str, Any], *, actor: audit.Actor,
           allowed_fields: Collection[str] | None = None) -> Purpose:
    """Register a purpose (version 1). Callers commit."""
    key = values.get("key", "")
    if not isinstance(key, str) or not KEY_RE.match(key):
        raise InvalidInput({"key": ["lowercase dotted slug, e.g. marketing.email"]})
    try:
        basis = LegalBasis(str(values.get("legal_basis")))
    except ValueError:
        raise InvalidInput({"legal_basis": ["one of " + ", ".join(LegalBasis)]}) from None
    merged: dict[str, Any] = {**{k: values.get(k) for k in EDITABLE}, "legal_basis": basis}
    _check_rules(merged, allowed_fields)
    purpose_record.require_dpia(merged)
    if session.get(PurposeRow, key) is not None:
        raise Conflict(f"a purpose {key!r} already exists")
    _check_source(session, key, merged.get("source_purpose"))
    now = utcnow()
    row = PurposeRow(
        key=key, legal_basis=str(basis), version=1, created_at=now, updated_at=now,
        title=merged["title"], description=merged.get("description") or "",
        cookie_category=merged.get("cookie_category"),
        retention_days=int(merged["retention_days"]),
        consent_lifetime_days=merged.get("consent_lifetime_days"),
        double_opt_in=bool(merged.get("double_opt_in")),
        direct_marketing=bool(merged.get("direct_marketing")),
        sale_or_sharing=bool(merged.get("sale_or_sharing")),
        special_category=bool(merged.get("special_category")),
        soft_opt_in=bool(merged.get("soft_opt_in")),
        lia_ref=merged.get("lia_ref"), dpv=merged.get("dpv"),
        source_purpose=merged.get("source_purpose"),
        compatibility_ref=merged.get("compatibility_ref"),
        translations=translations_json(merged.get("translations")),
        **{name: json.dumps(list(merged.get(name) or [])) for name in _LIST_FIELDS},
        **{name: purpose_record.stored(name, merged.get(name))
           for name in purpose_record.FIELDS},
    )
    session.add(row)
    session.flush()
    _record_version(session, row, material=True)
    audit.record(session, actor=actor, action="purpose.created",
                 details={"purpose": key, "version": 1, "legal_basis": str(basis)})
    return from_row(row)


def update(session: Session, key: str, changes: Mapping[str, Any], *, actor: audit.Actor,
           allowed_fields: Collection[str] | None = None) -> Purpose:
    """Change a purpose; ``material=True`` raises its version. Callers commit."""
    row = session.get(PurposeRow, key, with_for_update=True)
    if row is None:
        raise UnknownPurpose(key)
    if "legal_basis" in changes and changes["legal_basis"] != row.legal_basis:
        raise Conflict("the legal basis of a purpose never changes; register a new purpose")
    if "key" in changes and changes["key"] != key:
        raise Conflict("a purpose's key never changes")
    for name in FIXED:
        if name in changes and bool(changes[name]) != bool(getattr(row, name)):
            raise Conflict(f"{name} of a purpose never changes; register a new purpose")
    current = from_row(row)
    merged = {name: getattr(current, name) for name in EDITABLE}
    merged.update({k: v for k, v in changes.items() if k in EDITABLE})
    merged["legal_basis"] = current.legal_basis
    _check_rules(merged, allowed_fields)
    purpose_record.require_dpia(merged)
    if changes.get("source_purpose") is not None:
        _check_source(session, key, changes["source_purpose"])
    material = bool(changes.get("material"))
    for name in EDITABLE:
        if name not in changes:
            continue
        value = changes[name]
        if name in _LIST_FIELDS:
            value = json.dumps(list(value or []))
        elif name == "translations":
            value = translations_json(value)
        elif name in purpose_record.FIELDS:
            value = purpose_record.stored(name, value)
        elif name in ("double_opt_in", "direct_marketing", "sale_or_sharing", "special_category",
                      "soft_opt_in"):
            value = bool(value)
        setattr(row, name, value)
    if material:
        row.version += 1
    row.updated_at = utcnow()
    session.flush()
    _record_version(session, row, material=material)
    audit.record(session, actor=actor, action="purpose.updated",
                 details={"purpose": key, "version": row.version, "material": material,
                          "fields": sorted(k for k in changes if k in EDITABLE)})
    return from_row(row)


def get(session: Session, key: str) -> Purpose:
    """The purpose, or UnknownPurpose."""
    row = session.get(PurposeRow, key)
    if row is None:
        raise UnknownPurpose(key)
    return from_row(row)


def all_purposes(session: Session) -> list[Purpose]:
    """Every registered purpose, by key."""
    return [from_row(r) for r in session.scalars(select(PurposeRow).order_by(PurposeRow.key))]


def version_at(session: Session, key: str, at: datetime) -> int | None:
    """The purpose's version in force at ``at`` (None if it did not exist yet)."""
    return session.scalar(select(func.max(PurposeVersion.version))
                          .where(PurposeVersion.key == key, PurposeVersion.created_at <= at))


def history(session: Session, key: str) -> list[PurposeVersion]:
    """Every version and revision of a purpose as it was, newest first (UnknownPurpose if
    there is no such purpose)."""
    get(session, key)
    return list(session.scalars(select(PurposeVersion).where(PurposeVersion.key == key)
                                .order_by(PurposeVersion.version.desc(),
                                          PurposeVersion.revision.desc())))

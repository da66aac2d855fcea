"""Purposes and privacy notices (API.md "Purposes", "Notices")."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import validate

from consent import purpose_record, purpose_texts
from consent import purposes as registry
from consent.purposes import CookieCategory, LegalBasis
from privacy_hub.api.auth import current_principal, require
from privacy_hub.api.idempotency import idempotent
from privacy_hub.api.pagination import PAGE, next_cursor_field, page_of
from privacy_hub.schemas import Strict
from privacy_hub.usecases import purposes
from privacy_hub.vault.models import PERSONAL_FIELDS
from privacy_hub.web.context import db

blp = Blueprint("purposes", __name__, url_prefix="/api/v1",
                description="What personal data is used for, on which legal basis; privacy notices.")

def _strings(max_len: int = 200) -> ma.fields.List[str]:
    return ma.fields.List(ma.fields.String(validate=validate.Length(min=1, max=max_len)),
                          validate=validate.Length(max=50))


class PurposeTextFields(Strict):
    title = ma.fields.String(required=True,
                             validate=validate.Length(min=1, max=purpose_texts.TITLE_MAX))
    description = ma.fields.String(validate=validate.Length(max=purpose_texts.DESCRIPTION_MAX),
                                   metadata={"description": "Required when the purpose has a "
                                                            "description"})


class ByLanguage(ma.fields.Dict):
    """A dict by language code whose errors name ``translations.de.title``, as the
    registry's do, rather than marshmallow's ``translations.de.value.title``."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        try:
            return super()._deserialize(value, attr, data, **kwargs)  # type: ignore[no-untyped-call]
        except ma.ValidationError as exc:
            messages = exc.messages
            if isinstance(messages, dict):
                # keys are any string here (the registry checks them), so only values fail
                messages = {lang: problem.get("value", problem.get("key"))
                            if isinstance(problem, dict) and set(problem) <= {"key", "value"}
                            else problem for lang, problem in messages.items()}
            raise ma.ValidationError(messages) from None


_TRANSLATIONS_HELP = (
    "Title and description in other languages, by ISO 639 language code (2 or 3 lower-case "
    "letters, e.g. `de`; a region such as `de-AT` is refused with 422, not shortened): "
    "customers read the text in the language of their page, and the default `title` and "
    "`description` where there is none. On PATCH it replaces every translation (`{}` or "
    "null removes them); like any change it is a new revision, and a translation that "
    "changes what customers agree to needs `\"material\": true`.")


class TransferFields(Strict):
    recipient = ma.fields.String(required=True, validate=validate.Length(
        min=1, max=purpose_record.TEXT_MAX), metadata={"description": "Who receives the data"})
    country = ma.fields.String(required=True, validate=validate.OneOf(
        sorted(purpose_record.ISO_COUNTRIES - purpose_record.EEA),
        error="an ISO 3166-1 alpha-2 code of a country outside the EEA, e.g. US"),
        metadata={"description": "ISO 3166-1 alpha-2, outside the EEA (within it, sending "
                                 "data is no transfer)"})
    safeguard = ma.fields.String(required=True, validate=validate.Length(
        min=1, max=purpose_record.TEXT_MAX), metadata={"description": (
            "What makes the transfer lawful (Art. 45-49), e.g. \"adequacy decision\" or "
            "\"standard contractual clauses (2021/914)\"")})


class AutomatedDecisionFields(Strict):
    logic = ma.fields.String(required=True, validate=validate.Length(
        min=1, max=purpose_record.LONG_TEXT_MAX),
        metadata={"description": "Meaningful information about the logic involved"})
    significance = ma.fields.String(required=True, validate=validate.Length(
        min=1, max=purpose_record.LONG_TEXT_MAX),
        metadata={"description": "What the decision means for the person"})
    consequences = ma.fields.String(required=True, validate=validate.Length(
        min=1, max=purpose_record.LONG_TEXT_MAX),
        metadata={"description": "The envisaged consequences for the person"})


_RISK_HELP = ("Art. 35(1): `high` for large-scale profiling or segmentation with significant "
              "effects, large-scale special-category data, systematic monitoring, or an item "
              "on the supervisory authority's DPIA list. A `high` purpose needs `dpia_ref`: "
              "without it, creating or changing it is 409 (R-DPBD-03)")


class PurposeFields(Strict):
    title = ma.fields.String(validate=validate.Length(min=1, max=purpose_texts.TITLE_MAX))
    description = ma.fields.String(validate=validate.Length(max=purpose_texts.DESCRIPTION_MAX))
    # Keys are checked by the registry (consent.purpose_texts.LANGUAGE_RE), so that the API,
    # the CLI and the console refuse a bad one with the same message and field name.
    translations = ByLanguage(keys=ma.fields.String(),
                              values=ma.fields.Nested(PurposeTextFields), allow_none=True,
                                  validate=validate.Length(max=purpose_texts.MAX_TRANSLATIONS),
                                  metadata={"description": _TRANSLATIONS_HELP})
    cookie_category = ma.fields.String(allow_none=True,
                                       validate=validate.OneOf([str(c) for c in CookieCategory]))
    # "fields" would shadow Schema.fields: declare it under another attribute name.
    fields_ = ma.fields.List(ma.fields.String(validate=validate.OneOf(PERSONAL_FIELDS)),
                             data_key="fields", attribute="fields",
                             metadata={"description": "Customer fields this purpose may read"})
    retention_days = ma.fields.Integer(validate=validate.Range(min=1, max=36500))
    consent_lifetime_days = ma.fields.Integer(allow_none=True,
                                              validate=validate.Range(min=1, max=3650))
    double_opt_in = ma.fields.Boolean()
    direct_marketing = ma.fields.Boolean()
    sale_or_sharing = ma.fields.Boolean()
    data_categories = _strings()
    recipients = _strings()
    special_category = ma.fields.Boolean()
    soft_opt_in = ma.fields.Boolean(metadata={"description": (
        "ePrivacy Art. 13(2): email offers of the shop's own similar products to customers "
        "who bought something, until they object; legitimate_interests and direct_marketing "
        "only, never sale_or_sharing. Fixed for life (409)")})
    lia_ref = ma.fields.String(allow_none=True, validate=validate.Length(min=1, max=500))
    dpv = ma.fields.String(allow_none=True, validate=validate.Length(min=1, max=200), metadata={
        "description": "A purpose term of the W3C Data Privacy Vocabulary: dpv:DirectMarketing "
                       "or https://w3id.org/dpv#DirectMarketing"})
    source_purpose = ma.fields.String(allow_none=True, validate=validate.Length(min=1, max=100),
                                      metadata={"description": (
                                          "Further processing (Art. 6(4)): the registered "
                                          "purpose the data was first collected for")})
    compatibility_ref = ma.fields.String(allow_none=True, validate=validate.Length(min=1, max=500),
                                         metadata={"description": (
                                             "Where the compatibility assessment is documented; "
                                             "required with source_purpose unless the legal "
                                             "basis is consent")})
    transfers = ma.fields.List(ma.fields.Nested(TransferFields),
                               validate=validate.Length(max=purpose_record.MAX_ITEMS),
                               metadata={"description": (
                                   "Transfers to third countries with their safeguards "
                                   "(Art. 15(2), 30(1)(e)); default none")})
    automated_decisions = ma.fields.Nested(AutomatedDecisionFields, allow_none=True, metadata={
        "description": "Automated decision-making, including profiling (Art. 22, 15(1)(h)); "
                       "default null: none"})
    data_subject_categories = ma.fields.List(
        ma.fields.String(validate=validate.Length(min=1, max=200)),
        validate=validate.Length(min=1, max=purpose_record.MAX_ITEMS),
        metadata={"description": "Whose data it processes (Art. 30(1)(c)); default "
                                 "[\"customers\"]"})
    risk = ma.fields.String(validate=validate.OneOf([str(r) for r in purpose_record.Risk]),
                            metadata={"description": _RISK_HELP + "; default standard"})
    dpia_ref = ma.fields.String(allow_none=True, validate=validate.Length(
        min=1, max=purpose_record.TEXT_MAX), metadata={
            "description": "Where the data protection impact assessment (Art. 35) is "
                           "documented; required when risk is high"})


class PurposeCreate(PurposeFields):
    key = ma.fields.String(required=True, validate=[
        validate.Length(max=100),
        validate.Regexp(registry.KEY_RE, error="lowercase dotted slug, e.g. marketing.email")])
    title = ma.fields.String(required=True,
                             validate=validate.Length(min=1, max=purpose_texts.TITLE_MAX))
    legal_basis = ma.fields.String(required=True,
                                   validate=validate.OneOf([str(b) for b in LegalBasis]))
    retention_days = ma.fields.Integer(required=True, validate=validate.Range(min=1, max=36500))


class PurposePatch(PurposeFields):
    legal_basis = ma.fields.String(validate=validate.OneOf([str(b) for b in LegalBasis]),
                                   metadata={"description": "Never changes: a different value is 409"})
    material = ma.fields.Boolean(load_default=False, metadata={
        "description": "A material change raises the version; older consents stop counting, "
                       "and each customer who had given one is mailed (R-CONSENT-09)"})


class PurposeTextSchema(ma.Schema):
    title = ma.fields.String()
    description = ma.fields.String()


class TransferSchema(ma.Schema):
    recipient = ma.fields.String()
    country = ma.fields.String(metadata={"description": "ISO 3166-1 alpha-2, outside the EEA"})
    safeguard = ma.fields.String()


class AutomatedDecisionSchema(ma.Schema):
    logic = ma.fields.String()
    significance = ma.fields.String()
    consequences = ma.fields.String()


class PurposeSchema(ma.Schema):
    key = ma.fields.String()
    title = ma.fields.String(metadata={"description": "The default text"})
    description = ma.fields.String(metadata={"description": "The default text"})
    translations = ma.fields.Dict(keys=ma.fields.String(),
                                  values=ma.fields.Nested(PurposeTextSchema),
                                  metadata={"description": "Title and description by language "
                                                           "code, e.g. `de`"})
    legal_basis = ma.fields.String()
    cookie_category = ma.fields.String(allow_none=True)
    fields_ = ma.fields.List(ma.fields.String(), data_key="fields", attribute="fields")
    retention_days = ma.fields.Integer()
    consent_lifetime_days = ma.fields.Integer(allow_none=True)
    double_opt_in = ma.fields.Boolean()
    direct_marketing = ma.fields.Boolean()
    sale_or_sharing = ma.fields.Boolean()
    version = ma.fields.Integer()
    data_categories = ma.fields.List(ma.fields.String())
    recipients = ma.fields.List(ma.fields.String())
    special_category = ma.fields.Boolean()
    soft_opt_in = ma.fields.Boolean()
    lia_ref = ma.fields.String(allow_none=True)
    dpv = ma.fields.String(allow_none=True)
    dpv_iri = ma.fields.String(allow_none=True, metadata={"description": "The IRI of `dpv`"})
    dpv_legal_basis = ma.fields.String(metadata={
        "description": "The legal basis as a DPV EU GDPR term, e.g. "
                       "https://w3id.org/dpv/legal/eu/gdpr#A6-1-a for consent"})
    source_purpose = ma.fields.String(allow_none=True)
    compatibility_ref = ma.fields.String(allow_none=True)
    transfers = ma.fields.List(ma.fields.Nested(TransferSchema), metadata={
        "description": "Transfers to third countries with their safeguards (Art. 15(2), "
                       "30(1)(e)); [] when there are none"})
    automated_decisions = ma.fields.Nested(AutomatedDecisionSchema, allow_none=True, metadata={
        "description": "Automated decision-making (Art. 22, 15(1)(h)); null when there is none"})
    data_subject_categories = ma.fields.List(ma.fields.String(), metadata={
        "description": "Whose data it processes (Art. 30(1)(c))"})
    risk = ma.fields.String(metadata={"description": _RISK_HELP,
                                      "enum": [str(r) for r in purpose_record.Risk]})
    dpia_ref = ma.fields.String(allow_none=True, metadata={
        "description": "Where the DPIA (Art. 35) is documented"})
    created_at = ma.fields.DateTime(format="iso")
    updated_at = ma.fields.DateTime(format="iso")


class PurposeUpdated(PurposeSchema):
    notified = ma.fields.Integer(metadata={
        "description": "R-CONSENT-09: how many customers were sent a mail because this "
                       "change invalidates their consent (a material change: granted to an "
                       "older version and not expired); queued in the same transaction as "
                       "the change, so before it takes effect. 0 for a change that is not "
                       "material"})


class PurposeList(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(PurposeSchema))
    next_cursor = next_cursor_field()


@blp.route("/purposes")
class Purposes(MethodView):
    @require(None)
    @blp.arguments(PAGE, location="query")
    @blp.response(200, PurposeList)
    def get(self, page: dict[str, Any]) -> dict[str, Any]:
        """Every purpose (any valid key), by key; a system limited to purposes sees only those."""
        return page_of(purposes.all_purposes(db(), may_use=current_principal().may_use_purpose),
                       page, key="key")

    @require("purposes:manage")
    @idempotent
    @blp.arguments(PurposeCreate)
    @blp.response(201, PurposeSchema)
    def post(self, body: dict[str, Any]) -> dict[str, Any]:
        """Register a purpose (version 1). Its legal basis never changes."""
        return purposes.create(db(), body, actor=current_principal().actor)


@blp.route("/purposes/<string:key>")
class PurposeItem(MethodView):
    @require(None)
    @blp.response(200, PurposeSchema)
    def get(self, key: str) -> dict[str, Any]:
        """One purpose."""
        return purposes.get(db(), key, may_use=current_principal().may_use_purpose)

    @require("purposes:manage")
    @idempotent
    @blp.arguments(PurposePatch)
    @blp.response(200, PurposeUpdated)
    def patch(self, changes: dict[str, Any], key: str) -> dict[str, Any]:
        """Change a purpose; `"material": true` raises its version (re-consent needed).

        A material change mails every customer whose consent it invalidates, in the same
        transaction (R-CONSENT-09); `notified` says how many."""
        return purposes.update(db(), key, changes, actor=current_principal().actor)


class NoticeCreate(Strict):
    version = ma.fields.String(required=True, validate=[
        validate.Length(min=1, max=64), validate.Regexp(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")])
    language = ma.fields.String(load_default="en", validate=[
        validate.Length(max=16),  # notices.language is VARCHAR(16): longer was a 500 on PostgreSQL
        validate.Regexp(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$", error="a language tag, e.g. en or de-DE")])
    text = ma.fields.String(required=True, validate=validate.Length(min=1, max=200_000))


class NoticeSchema(ma.Schema):
    version = ma.fields.String()
    language = ma.fields.String()
    text = ma.fields.String()
    sha256 = ma.fields.String()
    created_at = ma.fields.DateTime(format="iso")


class NoticeQuery(ma.Schema):
    language = ma.fields.String(load_default="en", validate=validate.Length(max=16))


@blp.route("/notices")
class Notices(MethodView):
    @require("purposes:manage")
    @blp.arguments(NoticeCreate)
    @blp.response(201, NoticeSchema)
    @blp.alt_response(200, schema=NoticeSchema, description="Already published with this text")
    def post(self, body: dict[str, Any]) -> tuple[dict[str, Any], int]:
        """Publish an immutable notice; other text for a published version is 409."""
        notice, created = purposes.publish_notice(
            db(), version=body["version"], language=body["language"], text=body["text"],
            actor=current_principal().actor)
        return notice, 201 if created else 200


@blp.route("/notices/<string:version>")
class NoticeItem(MethodView):
    @require(None)
    @blp.arguments(NoticeQuery, location="query")
    @blp.response(200, NoticeSchema)
    def get(self, query: dict[str, Any], version: str) -> dict[str, Any]:
        """The exact text of a notice version, with its SHA-256."""
        return purposes.notice(db(), version, query["language"])

"""Request and response schemas of the API (marshmallow), shared with the CSV import: no
Flask here, so `privacy-hub import` does not load the web app. Unknown fields are rejected."""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime
from typing import Any

import marshmallow as ma
import phonenumbers
from marshmallow import validate

from privacy_hub.systems import SCOPES
from privacy_hub.vault.blind_index import NormalisationError, normalise_email

COUNTRIES = sorted(phonenumbers.SUPPORTED_REGIONS)
MAX_ATTRIBUTES_BYTES = 16 * 1024


class Strict(ma.Schema):
    class Meta:
        unknown = ma.RAISE


class UtcDateTime(ma.fields.AwareDateTime):
    """An RFC 3339 time with its offset, loaded as UTC. A time with no UTC equivalent
    (year 1 at +01:00, year 9999 at -01:00) is invalid input, not an overflow later on."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("format", "iso")
        kwargs.setdefault("default_timezone", None)
        super().__init__(**kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> datetime:
        loaded: datetime = super()._deserialize(value, attr, data, **kwargs)
        try:
            return loaded.astimezone(UTC)
        except OverflowError:
            raise ma.ValidationError("lies outside the range of times in UTC") from None


def _text(max_len: int, **kw: Any) -> ma.fields.String:
    return ma.fields.String(validate=validate.Length(min=1, max=max_len), **kw)


class AddressSchema(Strict):
    line1 = _text(200, allow_none=True)
    line2 = _text(200, allow_none=True)
    postal_code = _text(20, allow_none=True)
    city = _text(100, allow_none=True)
    country = ma.fields.String(
        allow_none=True, validate=validate.OneOf(COUNTRIES, error="must be an ISO 3166-1 alpha-2 "
                                                  "country code in capitals, e.g. DE"),
        metadata={"description": "ISO 3166-1 alpha-2", "example": "DE"})


def _email_ok(value: str) -> None:
    try:
        normalise_email(value)
    except NormalisationError as exc:
        raise ma.ValidationError(str(exc)) from None


def _birth_date_ok(value: date | None) -> None:
    if value is not None and not date(1900, 1, 1) <= value <= date.today():
        raise ma.ValidationError("must be a date between 1900-01-01 and today")


class CustomerFieldsSchema(Strict):
    external_id = _text(128, allow_none=True, metadata={"description": "The shop's own id"})
    email = ma.fields.String(validate=_email_ok, metadata={"example": "jane@example.com"})
    phone = ma.fields.String(allow_none=True, validate=validate.Length(min=3, max=32),
                             metadata={"description": "E.164, e.g. +4915112345678"})
    first_name = _text(200, allow_none=True)
    last_name = _text(200, allow_none=True)
    birth_date = ma.fields.Date(allow_none=True, validate=_birth_date_ok)
    locale = ma.fields.String(
        allow_none=True,
        validate=validate.Regexp(r"^[a-z]{2,3}([-_][A-Za-z0-9]{2,8})*$",
                                 error="must be a language tag, e.g. en or de-DE"))
    address = ma.fields.Nested(AddressSchema, allow_none=True)
    attributes = ma.fields.Dict(keys=ma.fields.String(validate=validate.Length(min=1, max=64)),
                                allow_none=True)

    @ma.validates("attributes")
    def _attributes_size(self, value: dict[str, Any] | None, **_: Any) -> None:
        if value is not None and len(json.dumps(value)) > MAX_ATTRIBUTES_BYTES:
            raise ma.ValidationError(f"must be at most {MAX_ATTRIBUTES_BYTES} bytes as JSON")


class CustomerCreateSchema(CustomerFieldsSchema):
    """Create or update: ``email`` is required when no customer matches."""


class CustomerPatchSchema(CustomerFieldsSchema):

    @ma.validates_schema
    def _not_empty(self, data: dict[str, Any], **_: Any) -> None:
        if not data:
            raise ma.ValidationError("give at least one field to change")


class CustomerSchema(CustomerFieldsSchema):
    id = ma.fields.String(metadata={"format": "uuid"})
    birth_date = ma.fields.String(allow_none=True, metadata={"format": "date"})  # type: ignore[assignment]
    status = ma.fields.String(metadata={"enum": ["active", "restricted", "erased"]})
    created_at = ma.fields.String(metadata={"format": "date-time"})
    updated_at = ma.fields.String(metadata={"format": "date-time"})
    erased_at = ma.fields.String(metadata={"format": "date-time"})

    class Meta:
        unknown = ma.INCLUDE


class LookupSchema(Strict):
    email = ma.fields.String(validate=validate.Length(min=3, max=254))
    phone = ma.fields.String(validate=validate.Length(min=3, max=32))
    external_id = _text(128)

    @ma.validates_schema
    def _exactly_one(self, data: dict[str, Any], **_: Any) -> None:
        if len(data) != 1:
            raise ma.ValidationError("give exactly one of email, phone, external_id")



# -- the hot bodies, checked by hand ------------------------------------------------------
# What CustomerCreateSchema and LookupSchema load, for the bodies nearly every request
# sends, at a fraction of marshmallow's cost. Each returns the loaded dict when the body
# is valid and has nothing marshmallow would treat differently, else None: the caller then
# loads it with the schema, which answers every invalid body exactly as before (and stays
# the one source of the OpenAPI document).

_LOCALE = re.compile(r"^[a-z]{2,3}([-_][A-Za-z0-9]{2,8})*$")
_COUNTRY_SET = frozenset(COUNTRIES)
_TEXT_LIMITS = {"external_id": (1, 128), "phone": (3, 32), "first_name": (1, 200),
                "last_name": (1, 200)}
_ADDRESS_LIMITS = {"line1": (1, 200), "line2": (1, 200), "postal_code": (1, 20),
                   "city": (1, 100)}
_CREATE_FIELDS = frozenset(CustomerFieldsSchema().fields)
_LOOKUP_LIMITS = {"email": (3, 254), "phone": (3, 32), "external_id": (1, 128)}


def _text_ok(value: object, limits: tuple[int, int]) -> bool:
    return isinstance(value, str) and limits[0] <= len(value) <= limits[1]


def _address_ok(value: object) -> bool:
    if not isinstance(value, dict):
        return False
    for key, item in value.items():
        if item is None:
            if key not in _ADDRESS_LIMITS and key != "country":
                return False
        elif key == "country":
            if not isinstance(item, str) or item not in _COUNTRY_SET:
                return False
        else:
            limits = _ADDRESS_LIMITS.get(key)
            if limits is None or not _text_ok(item, limits):
                return False
    return True


def _attributes_ok(value: object) -> bool:
    if not isinstance(value, dict):
        return False
    if not all(isinstance(k, str) and 1 <= len(k) <= 64 for k in value):
        return False
    return len(json.dumps(value)) <= MAX_ATTRIBUTES_BYTES


def fast_customer_fields(body: object) -> dict[str, Any] | None:
    """CustomerCreateSchema().load(body) for plainly valid bodies; None: use the schema."""
    if not isinstance(body, dict) or not _CREATE_FIELDS.issuperset(body):
        return None
    for name, value in body.items():
        if name == "email":
            if not isinstance(value, str):
                return None
            try:
                normalise_email(value)
            except NormalisationError:
                return None
        elif value is None:
            continue
        elif name == "locale":
            if not isinstance(value, str) or not _LOCALE.match(value):
                return None
        elif name == "address":
            if not _address_ok(value):
                return None
        elif name == "attributes":
            if not _attributes_ok(value):
                return None
        elif name == "birth_date":
            return None  # a date to parse: the schema does it
        elif not _text_ok(value, _TEXT_LIMITS[name]):
            return None
    return dict(body)


def fast_lookup(body: object) -> dict[str, str] | None:
    """LookupSchema().load(body) for plainly valid bodies; None: use the schema."""
    if not isinstance(body, dict) or len(body) != 1:
        return None
    (name, value), = body.items()
    limits = _LOOKUP_LIMITS.get(name)
    if limits is None or not _text_ok(value, limits):
        return None
    return {name: value}

class IdSchema(ma.Schema):
    id = ma.fields.String(metadata={"format": "uuid"})


class LookupResultSchema(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(IdSchema))


class SystemCreateSchema(Strict):
    name = ma.fields.String(required=True, validate=validate.Regexp(
        r"^[a-z0-9][a-z0-9_.-]{0,63}$",
        error="use 1-64 lowercase letters, digits, '.', '_' or '-'"))
    scopes = ma.fields.List(ma.fields.String(validate=validate.OneOf(SCOPES)), required=True,
                            validate=validate.Length(min=1))
    purposes = ma.fields.List(ma.fields.String(validate=validate.Length(min=1, max=100)),
                              allow_none=True, load_default=None)
    webhook_url = ma.fields.String(allow_none=True, load_default=None,
                                   validate=validate.Length(max=2048))


class SystemSchema(ma.Schema):
    id = ma.fields.String()
    name = ma.fields.String()
    scopes = ma.fields.List(ma.fields.String())
    purposes = ma.fields.List(ma.fields.String(), allow_none=True)
    webhook_url = ma.fields.String(allow_none=True)
    created_at = ma.fields.String(metadata={"format": "date-time"})


class SystemCreatedSchema(SystemSchema):
    api_key = ma.fields.String(metadata={"description": "Shown once; stored only as a hash."})
    webhook_secret = ma.fields.String(metadata={"description": "Verifies webhook signatures."})


class SystemPageSchema(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(SystemSchema))
    next_cursor = ma.fields.String(allow_none=True)

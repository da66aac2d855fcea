"""RFC 9457 problem documents, and the one place domain errors become HTTP answers."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from flask import Response
from werkzeug.exceptions import HTTPException

from consent.errors import Conflict as ConsentConflict
from consent.errors import DpiaRequired, TokenInvalid, UnknownNotice, UnknownPurpose
from consent.errors import InvalidInput as ConsentInvalid
from dsar.errors import InvalidRequest, RequestNotFound, TransitionRefused, VerificationFailed
from privacy_hub.systems import InvalidSystem, SystemExists
from privacy_hub.usecases import errors as usecase
from privacy_hub.vault.errors import (
    CustomerErased,
    CustomerNotFound,
    DecryptionError,
    DuplicateIdentifier,
    InvalidCustomerData,
    KeyDestroyed,
    KeyMissing,
)
from privacy_hub.web.problems import problem_response, title

log = logging.getLogger(__name__)


class Problem(Exception):
    """Raise from a view to answer with a problem document."""

    def __init__(self, status: int, detail: str, *, errors: Mapping[str, list[str]] | None = None,
                 type_: str | None = None, headers: Mapping[str, str] | None = None,
                 **extra: Any) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.errors = dict(errors) if errors else None
        self.type_ = type_
        self.headers = dict(headers or {})
        self.extra = extra


def flatten_errors(messages: Any, prefix: str = "") -> dict[str, list[str]]:
    """marshmallow's nested messages as ``{"address.city": ["..."]}``."""
    out: dict[str, list[str]] = {}
    if isinstance(messages, Mapping):
        for key, value in messages.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            if name == "_schema" or name.endswith("._schema"):
                name = prefix or "_schema"
            out.update(_merge(out, flatten_errors(value, name)))
    elif isinstance(messages, list | tuple):
        if all(isinstance(m, str) for m in messages):
            out.setdefault(prefix or "_schema", []).extend(messages)
        else:
            for i, value in enumerate(messages):
                out.update(_merge(out, flatten_errors(value, f"{prefix}.{i}" if prefix else str(i))))
    else:
        out.setdefault(prefix or "_schema", []).append(str(messages))
    return out


def _merge(into: dict[str, list[str]], new: dict[str, list[str]]) -> dict[str, list[str]]:
    for k, v in new.items():
        into.setdefault(k, [])
        into[k] = into[k] + [m for m in v if m not in into[k]]
    return into


def from_http_exception(error: HTTPException) -> Response:
    status = error.code or 500
    data = getattr(error, "data", None) or {}
    if status == 422 and "messages" in data:
        messages = data["messages"]
        # webargs nests by location: {"json": {...}} / {"query": {...}}
        flat: dict[str, list[str]] = {}
        for location, msgs in messages.items():
            flat.update(flatten_errors(msgs) if location in ("json", "query", "querystring")
                        else flatten_errors(msgs, str(location)))
        return problem_response(422, "The request has invalid fields: " + ", ".join(sorted(flat)),
                                errors=flat, headers=data.get("headers"))
    detail = data.get("message") or error.description or title(status)
    if status == 400 and "messages" in data:
        detail = "The request body is not valid JSON."
    headers = dict(data.get("headers") or {})
    if status == 405 and error.get_response().headers.get("Allow"):
        headers["Allow"] = error.get_response().headers["Allow"]
    if status == 413:
        detail = "The request body is larger than this endpoint accepts."
    return problem_response(status, str(detail), headers=headers)


def from_domain_error(exc: Exception) -> Response | None:
    """Map a domain error to its problem document; None if it is not one of ours."""
    if isinstance(exc, Problem):
        return problem_response(exc.status, exc.detail, errors=exc.errors, type_=exc.type_,
                                headers=exc.headers, **exc.extra)
    if isinstance(exc, usecase.UseCaseError):
        return _from_usecase_error(exc)
    if isinstance(exc, InvalidRequest):
        return problem_response(422, "The request has invalid fields: "
                                + ", ".join(sorted(exc.errors)), errors=exc.errors)
    if isinstance(exc, RequestNotFound):
        return problem_response(404, "No such request (or no active customer with this id).")
    if isinstance(exc, TransitionRefused):
        return problem_response(409, str(exc).capitalize() + ".", type_="invalid-transition")
    if isinstance(exc, VerificationFailed):
        return problem_response(422, str(exc).capitalize() + ".", type_="token-invalid",
                                errors={"token": [str(exc)]})
    if isinstance(exc, ConsentInvalid):
        return problem_response(422, "The request has invalid fields: "
                                + ", ".join(sorted(exc.errors)), errors=exc.errors)
    if isinstance(exc, UnknownPurpose):
        return problem_response(404, "No purpose with this key.", type_="unknown-purpose")
    if isinstance(exc, UnknownNotice):
        return problem_response(404, "No notice with this version and language.")
    if isinstance(exc, DpiaRequired):  # R-DPBD-03
        return problem_response(409, str(exc).capitalize() + ".", type_="dpia-required",
                                errors={"dpia_ref": ["required while risk is high"]})
    if isinstance(exc, ConsentConflict):
        return problem_response(409, str(exc), type_="conflict")
    if isinstance(exc, TokenInvalid):
        return problem_response(422, str(exc).capitalize() + ".", type_="token-invalid",
                                errors={"token": [str(exc)]})
    if isinstance(exc, InvalidCustomerData):
        return problem_response(422, "The customer data has invalid fields: "
                                + ", ".join(sorted(exc.errors)), errors=exc.errors)
    if isinstance(exc, InvalidSystem):
        return problem_response(422, "The system has invalid fields: "
                                + ", ".join(sorted(exc.errors)), errors=exc.errors)
    if isinstance(exc, CustomerNotFound):
        return problem_response(404, "No customer with this id.")
    # KeyDestroyed: a concurrent erasure shredded the key after this request found the
    # customer active; for this request, too, the customer is erased.
    if isinstance(exc, CustomerErased | KeyDestroyed):
        return problem_response(409, "This customer was erased; their data can no longer be changed.",
                                type_="customer-erased")
    if isinstance(exc, DuplicateIdentifier):
        return problem_response(409, str(exc).capitalize() + ".", type_="duplicate-identifier",
                                errors={exc.field: ["already used by another customer"]})
    if isinstance(exc, SystemExists):
        return problem_response(409, str(exc), type_="system-exists")
    if isinstance(exc, DecryptionError | KeyMissing):
        log.error("vault key or ciphertext problem: %s", type(exc).__name__)
        return problem_response(500, "The hub could not decrypt stored data; an operator "
                                "has to check the key store.")
    return None


_USECASE_STATUS: dict[type[usecase.UseCaseError], int] = {
    usecase.NotFound: 404, usecase.Refused: 403, usecase.Conflict: 409, usecase.Gone: 410,
    usecase.Invalid: 422, usecase.Unavailable: 503,
}


def _from_usecase_error(exc: usecase.UseCaseError) -> Response:
    status = _USECASE_STATUS.get(type(exc), 500)
    return problem_response(
        status, exc.detail, type_=exc.type_,
        errors=exc.errors if isinstance(exc, usecase.Invalid) else None,
        headers={"Retry-After": "1"} if isinstance(exc, usecase.Unavailable) else None,
        **exc.extra)

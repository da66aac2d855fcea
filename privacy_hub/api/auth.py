"""Service authentication: ``Authorization: Bearer <api key>`` with scopes."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import g, request
from flask_smorest import Blueprint

from privacy_hub.api.problems import Problem
from privacy_hub.systems import Principal
from privacy_hub.usecases import access
from privacy_hub.web.context import hub

F = TypeVar("F", bound=Callable[..., Any])


def authenticate() -> Principal:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Problem(401, "Send your API key as `Authorization: Bearer <api key>`.",
                      headers={"WWW-Authenticate": 'Bearer realm="privacy-hub"'})
    # A short read of its own (no write lock), usually not even that: keys are cached.
    principal = hub().systems.authenticate(hub().read_sessions, token.strip())
    if principal is None:
        raise Problem(401, "The API key is not valid (unknown, revoked or mistyped).",
                      headers={"WWW-Authenticate": 'Bearer realm="privacy-hub", error="invalid_token"'})
    return principal


def current_principal() -> Principal:
    principal: Principal = g.principal
    return principal


def require(scope: str | None) -> Callable[[F], F]:
    """Authenticate the caller and require ``scope`` (None: any valid key)."""

    def decorator(fn: F) -> F:
        @wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            principal = authenticate()
            if scope is not None and scope not in principal.scopes:
                raise Problem(403, f"This API key lacks the `{scope}` scope.",
                              type_="missing-scope", required_scope=scope)
            g.principal = principal
            return fn(*args, **kwargs)

        responses = {"401": "Unauthenticated"}
        if scope is not None:
            responses["403"] = "Forbidden"
        documented: F = Blueprint.doc(security=[{"bearerAuth": [scope] if scope else []}],
                                      responses=responses)(wrapper)
        return documented

    return decorator


def require_purpose(purpose: str) -> None:
    """A system limited to some purposes may check, read or record nothing for others."""
    access.require_purpose(current_principal().may_use_purpose, purpose)

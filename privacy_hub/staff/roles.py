"""The roles and what each may do: one matrix, read by every console view and action.

Least privilege (Art. 25(2), 32(4) GDPR): an admin runs the hub (staff, systems) but reads
no customer's data or request; an agent works requests and looks customers up; an auditor
reads everything a supervisory authority would ask for and changes nothing; the DPO does
all of the privacy work. A view names the permission it needs; nothing else decides.
"""

from __future__ import annotations

ROLES: tuple[str, ...] = ("admin", "dpo", "agent", "auditor")

_ALL = frozenset(ROLES)

#: permission -> the roles that have it
PERMISSIONS: dict[str, frozenset[str]] = {
    "staff:manage": frozenset({"admin"}),
    "systems:read": frozenset({"admin", "dpo", "auditor"}),
    "systems:write": frozenset({"admin", "dpo"}),
    "purposes:read": _ALL,
    "purposes:write": frozenset({"dpo"}),
    "requests:read": frozenset({"dpo", "agent", "auditor"}),
    "requests:work": frozenset({"dpo", "agent"}),
    "customers:lookup": frozenset({"dpo", "agent", "auditor"}),
    #: decrypted personal fields in a look-up (others see ids, consents and requests)
    "customers:personal": frozenset({"dpo", "agent"}),
    "audit:read": frozenset({"dpo", "auditor"}),
    "audit:verify": frozenset({"admin", "dpo", "auditor"}),
    "ropa:read": frozenset({"admin", "dpo", "auditor"}),
    "figures:read": frozenset({"admin", "dpo", "auditor"}),
}


def allows(role: str, permission: str) -> bool:
    """Whether ``role`` has ``permission``; an unknown permission is nobody's."""
    return role in PERMISSIONS.get(permission, frozenset())


def permissions_of(role: str) -> frozenset[str]:
    """Every permission ``role`` has."""
    return frozenset(p for p, roles in PERMISSIONS.items() if role in roles)

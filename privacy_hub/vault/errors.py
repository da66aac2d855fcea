"""The vault's error family; the API maps these to problem documents in one place."""


class VaultError(Exception):
    """Base class for vault errors."""


class DecryptionError(VaultError):
    """A ciphertext failed authentication: wrong cell, row, customer, key, or tampered."""


class KeyDestroyed(VaultError):
    """The customer's data key no longer exists (the customer was crypto-shredded)."""


class KeyMissing(VaultError):
    """A key-encryption key or hub key the data needs is not in the key store."""


class CustomerNotFound(VaultError):
    """No customer with that id."""


class CustomerErased(VaultError):
    """The customer was erased; nothing about them can be changed any more."""


class InvalidCustomerData(VaultError):
    """Field-level validation failed. ``errors`` maps field names to messages."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__("invalid customer data: " + ", ".join(sorted(errors)))
        self.errors = errors


class DuplicateIdentifier(VaultError):
    """Another customer already holds this external id, email or phone."""

    def __init__(self, field: str) -> None:
        super().__init__(f"another customer already has this {field}")
        self.field = field

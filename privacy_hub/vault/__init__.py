"""The encrypted customer vault: field-level encryption under one key per customer.

``service.Vault`` is what callers use; ``crypto`` is the cell format, ``cells`` turns
fields into sealed cells, ``keystore`` holds the wrapped keys, which ``keyring``,
``keks`` and ``rotation`` create, unwrap, rotate and shred.
"""

from privacy_hub.vault.blind_index import BlindIndexer
from privacy_hub.vault.keyring import KeyRing
from privacy_hub.vault.keystore import KeystoreBase
from privacy_hub.vault.models import Customer, VaultBase
from privacy_hub.vault.service import Vault

__all__ = ["BlindIndexer", "Customer", "KeyRing", "KeystoreBase", "Vault", "VaultBase"]

"""The suppression list (R-ERASE-05) in the records of processing (Art. 30(1)): the one
processing activity of the hub's own that no purpose in the registry describes.

The list itself lives in consent/suppression.py (entries, matching, lifting) and
privacy_hub/vault/suppression.py (the keyed hashes); no use case lists or reveals an
entry: the console's figures count them (usecases/figures.py).
"""

from __future__ import annotations

from typing import Any

from consent import dpv

ACTIVITY = "suppression_list"


def ropa_activity(security_measures: str) -> dict[str, Any]:
    """The suppression list as an activity of the records of processing, shaped as the
    activities generated from purposes (the same keys, so the CSV and the console show it
    alike)."""
    return {
        "purpose": ACTIVITY,
        "name": "Suppression list: no marketing after erasure or objection",
        "description": (
            "Keeps an erasure (Art. 17) and an objection to direct marketing (Art. 21(3)) "
            "effective: a customer later created, imported or otherwise made again with a "
            "listed email address or phone number is refused every direct-marketing "
            "purpose until they give a fresh consent to direct marketing themselves (not "
            "through an import, a bulk load or a partner feed), which deletes the entries "
            "of their identifiers."),
        "version": 1,
        "legal_basis": "legal_obligation",
        "legal_basis_detail": (
            "Art. 6(1)(c) GDPR with Art. 17(3)(b) and 21(3): complying with the obligation "
            "to honour an erasure and an objection to direct marketing durably; Art. 6(1)(f): "
            "the legitimate interest of the controller and of the person in not being "
            "contacted again after asking not to be."),
        "lia_ref": None,
        "dpv": None,
        "dpv_legal_basis": dpv.LEGAL_BASES["legal_obligation"],
        "further_processing_of": None,
        "compatibility_ref": None,
        "categories_of_data_subjects": [
            "former customers who were erased",
            "customers and former customers who objected to direct marketing"],
        "categories_of_personal_data": [
            "keyed hash (HMAC-SHA256) of the normalised email address",
            "keyed hash (HMAC-SHA256) of the normalised phone number",
            "the day the entry was made",
            "the reason: erased or objected_direct_marketing"],
        "special_category": False,
        "recipients": [],
        "internal_systems": [],
        "third_country_transfers": "none",
        "transfers": [],
        "automated_decisions": None,
        "risk": "standard",
        "dpia_ref": None,
        "retention": (
            "until the person gives a fresh consent to direct marketing themselves (the "
            "entries of their identifiers are then deleted); otherwise for as long as the "
            "controller carries out direct marketing, since deleting an entry would let "
            "marketing to that person resume"),
        "security_measures": (
            "One entry per identifier holding only its hash, the day and the reason: no "
            "customer id and nothing that links it to a person; the hash is keyed with a hub "
            "key of its own (not the blind-index key), wrapped like every hub key; no "
            "interface lists or reveals entries, the console only counts them; audit entries "
            "name counts and reasons only. " + security_measures),
        "consent_proof_retention": None,  # not consent-based: no proof of consent kept
    }

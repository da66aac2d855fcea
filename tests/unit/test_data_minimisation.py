"""Each stored customer field is mapped to at least one purpose (R-DPBD-02, Art. 5(1)(c),
25(1)): a lint over the vault's schema and the demo catalogue, run with the unit tests."""

from __future__ import annotations

from consent.catalogue import ECOMMERCE
from privacy_hub.vault.models import PERSONAL_FIELDS, Customer


def _sealed_columns() -> set[str]:
    return {c.name.removesuffix("_ct") for c in Customer.__table__.columns
            if c.name.endswith("_ct")}


def test_every_sealed_customer_column_is_a_declared_personal_field() -> None:
    """R-DPBD-02: a column added to the vault's customers table is a personal field that
    purposes may name (and the registry checks), never a field outside the list."""
    assert _sealed_columns() == set(PERSONAL_FIELDS)


def test_every_stored_customer_field_maps_to_a_purpose_of_the_catalogue() -> None:
    """R-DPBD-02: no customer field is stored without a purpose that uses it."""
    mapped = {field for purpose in ECOMMERCE for field in purpose.get("fields", ())}
    unmapped = sorted(_sealed_columns() - mapped)
    assert not unmapped, f"customer fields no purpose of consent/catalogue.py uses: {unmapped}"


def test_the_catalogue_names_only_stored_customer_fields() -> None:
    """R-DPBD-02 the other way round: a purpose reads only fields the vault holds."""
    named = {field for purpose in ECOMMERCE for field in purpose.get("fields", ())}
    assert named <= _sealed_columns()

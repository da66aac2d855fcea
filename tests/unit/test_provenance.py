"""Who a write came from, as the access answer's ``source`` names it (R-ACC-01, Art. 15(1)(g))."""

from __future__ import annotations

from privacy_hub.rights.provenance import origin


def test_each_actor_of_a_write_is_named_as_its_source() -> None:
    """R-ACC-01: the subject, an import with its named source, a system by name, staff."""
    assert origin("customer", "c-1") == ("you", None)
    assert origin("cli", "import", {"source": "import", "import_source": "partner-feed"}) == (
        "import", "partner-feed")
    assert origin("cli", "import", {"source": "import"}) == ("import", None)
    assert origin("system", "shop") == ("system", "shop")
    assert origin("staff", "s-1") == ("staff", None)  # no staff id in the subject's answer
    assert origin("cli", "demo") == ("operator", None)
    assert origin("job", "exports") == ("hub", None)

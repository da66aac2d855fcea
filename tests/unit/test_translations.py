"""Every string a page shows is translatable, and German is complete (the portal issue:
"Flask-Babel with English and German complete")."""

from __future__ import annotations

from pathlib import Path

from babel.messages.extract import extract_from_dir
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parents[2]
CATALOGUES = ROOT / "privacy_hub" / "translations"
METHODS = [("privacy_hub/**.py", "python"), ("privacy_hub/templates/**.html", "jinja2")]


def _source_messages() -> set[str]:
    found = set()
    for _file, _line, message, _comments, _context in extract_from_dir(
            str(ROOT), METHODS, keywords={"_": None, "gettext": None, "ngettext": (1, 2),
                                          "_l": None, "lazy_gettext": None, "N_": None}):
        found.add(message[0] if isinstance(message, tuple) else message)
    return found


def test_every_string_in_the_source_has_a_german_translation() -> None:
    with open(CATALOGUES / "de" / "LC_MESSAGES" / "messages.po", "rb") as fh:
        catalogue = read_po(fh)
    translated = {m.id if isinstance(m.id, str) else m.id[0]: m.string
                  for m in catalogue if m.id and m.string and "fuzzy" not in m.flags}
    missing = sorted(_source_messages() - set(translated))
    assert not missing, f"untranslated (run `make translations`, then translate): {missing}"


def test_compiled_german_catalogue_matches_its_source() -> None:
    with open(CATALOGUES / "de" / "LC_MESSAGES" / "messages.po", "rb") as fh:
        source = {m.id: m.string for m in read_po(fh) if m.id and "fuzzy" not in m.flags}
    with open(CATALOGUES / "de" / "LC_MESSAGES" / "messages.mo", "rb") as fh:
        compiled = {m.id: m.string for m in read_mo(fh) if m.id}
    assert compiled == source, "run `make translations` to compile the catalogue"

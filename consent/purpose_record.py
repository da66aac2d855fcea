"""What a purpose tells the records of processing (Art. 30(1)) and an Art. 15 answer beyond
its legal basis: transfers to third countries with their safeguards, automated decisions,
the categories of data subjects, and its risk with the DPIA that assessed it (Art. 35).

Each is optional on a purpose and defaults to none (no transfer, no automated decision,
customers, standard risk); the registry (consent/purposes.py) stores and checks them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

from consent.errors import DpiaRequired

#: ISO 3166-1 alpha-2: every officially assigned code
ISO_COUNTRIES = frozenset("""
AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR
BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ
EC EE EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW
GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN KP KR KW KY
KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV
MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY
QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF TG
TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM
ZW""".split())  # noqa: SIM905 - 249 codes are easier to check as text
#: the EEA: the 27 member states (with the outermost regions and Åland, which have codes of
#: their own) and Iceland, Liechtenstein and Norway. Data sent there is no transfer under
#: Chapter V GDPR.
EEA = frozenset("""
AT BE BG CY CZ DE DK EE ES FI FR GR HR HU IE IT LT LU LV MT NL PL PT RO SE SI SK
AX GF GP MQ RE YT MF IS LI NO""".split())  # noqa: SIM905 - as above
#: Art. 30(1)(c): whose data a purpose processes, unless it says otherwise
DEFAULT_SUBJECT_CATEGORIES = ("customers",)
TEXT_MAX = 500
LONG_TEXT_MAX = 2000
MAX_ITEMS = 50


class Risk(StrEnum):
    """Art. 35(1): a purpose likely to result in a high risk needs a DPIA before it runs."""

    STANDARD = "standard"
    HIGH = "high"


@dataclass(frozen=True)
class Transfer:
    """A transfer of personal data to a third country (Art. 15(2), 30(1)(e), 44-49)."""

    recipient: str
    #: ISO 3166-1 alpha-2, outside the EEA
    country: str
    #: e.g. "adequacy decision", "standard contractual clauses (2021/914)"
    safeguard: str


@dataclass(frozen=True)
class AutomatedDecision:
    """Automated decision-making, including profiling (Art. 22, 15(1)(h)): meaningful
    information about the logic involved, its significance and envisaged consequences."""

    logic: str
    significance: str
    consequences: str


#: the purpose fields this module holds, as the registry's EDITABLE names them
FIELDS = ("transfers", "automated_decisions", "data_subject_categories", "risk", "dpia_ref")


def _text(value: Any, limit: int) -> str | None:
    return value.strip() if isinstance(value, str) and 0 < len(value.strip()) <= limit else None


def _check_transfers(value: Any) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list | tuple) or len(value) > MAX_ITEMS:
        return [f"a list of at most {MAX_ITEMS} transfers, each "
                "{recipient, country, safeguard}"]
    problems = []
    for i, item in enumerate(value):
        if isinstance(item, Transfer):
            item = asdict(item)
        if not isinstance(item, Mapping) or set(item) != {"recipient", "country", "safeguard"}:
            problems.append(f"{i}: exactly recipient, country and safeguard")
            continue
        if _text(item["recipient"], TEXT_MAX) is None or _text(item["safeguard"], TEXT_MAX) is None:
            problems.append(f"{i}: recipient and safeguard are texts of 1 to {TEXT_MAX} "
                            "characters (the safeguard e.g. \"adequacy decision\" or "
                            "\"standard contractual clauses (2021/914)\")")
        country = item["country"]
        if not isinstance(country, str) or country not in ISO_COUNTRIES:
            problems.append(f"{i}: country is an ISO 3166-1 alpha-2 code, e.g. US")
        elif country in EEA:
            problems.append(f"{i}: {country} is in the EEA: sending data there is no "
                            "third-country transfer")
    return problems


def _check_automated(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, AutomatedDecision):
        value = asdict(value)
    if (not isinstance(value, Mapping)
            or set(value) != {"logic", "significance", "consequences"}
            or any(_text(value[k], LONG_TEXT_MAX) is None for k in value)):
        return ["null, or {logic, significance, consequences}: each a text of 1 to "
                f"{LONG_TEXT_MAX} characters (Art. 15(1)(h))"]
    return []


def check(values: Mapping[str, Any]) -> dict[str, list[str]]:
    """The field errors of this module's fields in a purpose's merged values."""
    errors: dict[str, list[str]] = {}
    if problems := _check_transfers(values.get("transfers")):
        errors["transfers"] = problems
    if problems := _check_automated(values.get("automated_decisions")):
        errors["automated_decisions"] = problems
    subjects = values.get("data_subject_categories")
    if subjects is not None and (
            not isinstance(subjects, list | tuple) or not subjects or len(subjects) > MAX_ITEMS
            or any(_text(s, 200) is None for s in subjects)):
        errors["data_subject_categories"] = [
            f"a list of 1 to {MAX_ITEMS} categories of data subjects, e.g. customers"]
    risk = values.get("risk")
    if risk is not None and risk not in {str(r) for r in Risk}:
        errors["risk"] = ["one of " + ", ".join(Risk)]
    ref = values.get("dpia_ref")
    if ref is not None and _text(ref, TEXT_MAX) is None:
        errors["dpia_ref"] = [f"null, or where the DPIA is documented (1 to {TEXT_MAX} "
                              "characters)"]
    return errors


def require_dpia(values: Mapping[str, Any]) -> None:
    """R-DPBD-03, Art. 35(1): a high-risk purpose runs only with its DPIA named."""
    if values.get("risk") == Risk.HIGH and not values.get("dpia_ref"):
        raise DpiaRequired("a purpose with risk high needs the data protection impact "
                           "assessment (Art. 35) done first: set dpia_ref to where it is "
                           "documented")


def transfers(value: Iterable[Any] | None) -> tuple[Transfer, ...]:
    """Checked transfers as values."""
    return tuple(t if isinstance(t, Transfer) else Transfer(
        recipient=t["recipient"].strip(), country=t["country"], safeguard=t["safeguard"].strip())
        for t in value or ())


def automated_decision(value: Any) -> AutomatedDecision | None:
    """A checked automated decision as a value (None: there is none)."""
    if value is None or isinstance(value, AutomatedDecision):
        return value
    return AutomatedDecision(**{k: value[k].strip() for k in ("logic", "significance",
                                                               "consequences")})


def subject_categories(value: Iterable[str] | None) -> tuple[str, ...]:
    """The categories of data subjects (customers when none are named)."""
    named = tuple(s.strip() for s in value or ())
    return named or DEFAULT_SUBJECT_CATEGORIES


def stored(name: str, value: Any) -> Any:
    """A checked value of one of FIELDS as its row column holds it."""
    if name == "transfers":
        return json.dumps([asdict(t) for t in transfers(value)])
    if name == "automated_decisions":
        decision = automated_decision(value)
        return None if decision is None else json.dumps(asdict(decision))
    if name == "data_subject_categories":
        return json.dumps(list(subject_categories(value)))
    if name == "risk":
        return str(Risk(value or Risk.STANDARD))
    return value  # dpia_ref


def loaded(row: Any) -> dict[str, Any]:
    """This module's fields of a stored purpose row, as the Purpose holds them."""
    decision = json.loads(row.automated_decisions) if row.automated_decisions else None
    return {"transfers": transfers(json.loads(row.transfers or "[]")),
            "automated_decisions": automated_decision(decision),
            "data_subject_categories": subject_categories(
                json.loads(row.data_subject_categories or "[]")),
            "risk": Risk(row.risk or Risk.STANDARD), "dpia_ref": row.dpia_ref}

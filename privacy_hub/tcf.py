"""IAB TCF v2 TC strings: check one a CMP produced and read its core segment's header.

The hub never creates or alters a TC string (R-SIG-03: only a registered CMP may); it
stores the string verbatim and keeps the header fields below beside it, which say which
CMP made it, when, and against which vendor list and policy. Errors say what is wrong
with a string, never what it holds: a TC string can be personal data (CJEU C-604/22).

Format ("Consent string and vendor list formats v2"): base64url without padding,
segments separated by ".", the core segment first. Each character is six bits, read as
the IAB's reference decoder reads them; the core segment begins

    Version 6 | Created 36 | LastUpdated 36 | CmpId 12 | CmpVersion 12 |
    ConsentScreen 6 | ConsentLanguage 12 | VendorListVersion 12 | TcfPolicyVersion 6 |
    IsServiceSpecific 1 | UseNonStandardTexts 1 | SpecialFeatureOptIns 12 |
    PurposesConsent 24 | PurposesLITransparency 24 | PurposeOneTreatment 1 |
    PublisherCC 12 | vendor consents | vendor legitimate interests | publisher restrictions

with times in deciseconds since the epoch and letters six bits each, A = 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

MAX_LENGTH = 8192
#: what the API documents; decode() is the real check (it also reads the structure)
PATTERN = r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$"
SUPPORTED_VERSION = 2

_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
_SIXBITS = {c: i for i, c in enumerate(_ALPHABET)}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: segment types after the core: disclosed vendors, allowed vendors, publisher TC
_SEGMENT_TYPES = {1, 2, 3}


class InvalidTcString(ValueError):
    """The string is not a TCF v2 TC string; the message says why without quoting it."""


@dataclass(frozen=True)
class TcHeader:
    """The core segment's header: who made the string, when, against which lists."""

    version: int
    created: datetime
    last_updated: datetime
    cmp_id: int
    cmp_version: int
    consent_screen: int
    consent_language: str
    vendor_list_version: int
    tcf_policy_version: int


class _Bits:
    """A segment as a bit string, read front to back."""

    def __init__(self, segment: str) -> None:
        value = 0
        for char in segment:
            value = value << 6 | _SIXBITS[char]
        self.value = value
        self.length = 6 * len(segment)
        self.pos = 0

    def read(self, n: int) -> int:
        if self.pos + n > self.length:
            raise InvalidTcString("the core segment ends before its fields do (truncated?)")
        shift = self.length - self.pos - n
        self.pos += n
        return (self.value >> shift) & ((1 << n) - 1)

    def skip_vendor_ids(self) -> None:
        """A vendor section: MaxVendorId, then a bit field or a list of ranges."""
        max_vendor_id = self.read(16)
        if self.read(1):  # IsRangeEncoding
            self.skip_ranges()
        elif max_vendor_id:
            self.read(max_vendor_id)  # one bit per vendor

    def skip_ranges(self) -> None:
        for _ in range(self.read(12)):  # NumEntries
            is_a_range = self.read(1)
            self.read(32 if is_a_range else 16)


def _time(deciseconds: int) -> datetime:
    return _EPOCH + timedelta(milliseconds=100 * deciseconds)


def decode(tc_string: str) -> TcHeader:
    """The header of a TCF v2 TC string; InvalidTcString saying what is wrong otherwise.

    Checks the whole core segment's structure (its vendor and publisher restriction
    sections must be complete) and the type of every further segment.
    """
    if not tc_string:
        raise InvalidTcString("must not be empty")
    if len(tc_string) > MAX_LENGTH:
        raise InvalidTcString(f"longer than {MAX_LENGTH} characters")
    segments = tc_string.split(".")
    if not all(segments):
        raise InvalidTcString("has an empty segment (segments are separated by a single '.')")
    if any(char not in _SIXBITS for segment in segments for char in segment):
        raise InvalidTcString("is not base64url: only A-Z, a-z, 0-9, '-' and '_' in "
                              "segments separated by '.', without '=' padding")
    core = _Bits(segments[0])
    version = core.read(6)
    if version != SUPPORTED_VERSION:
        raise InvalidTcString(f"the core segment is TCF version {version}, not "
                              f"{SUPPORTED_VERSION}")
    created, last_updated = core.read(36), core.read(36)
    cmp_id, cmp_version, consent_screen = core.read(12), core.read(12), core.read(6)
    first, second = core.read(6), core.read(6)
    vendor_list_version, tcf_policy_version = core.read(12), core.read(6)
    if first > 25 or second > 25:
        raise InvalidTcString("the consent language is not two letters A-Z")
    # IsServiceSpecific, UseNonStandardTexts, SpecialFeatureOptIns, PurposesConsent,
    # PurposesLITransparency, PurposeOneTreatment, PublisherCC
    core.read(1 + 1 + 12 + 24 + 24 + 1 + 12)
    core.skip_vendor_ids()  # vendor consents
    core.skip_vendor_ids()  # vendor legitimate interests
    for _ in range(core.read(12)):  # NumPubRestrictions
        core.read(6 + 2)  # PurposeId, RestrictionType
        core.skip_ranges()
    for number, segment in enumerate(segments[1:], start=2):
        kind = _Bits(segment).value >> (6 * len(segment) - 3)
        if kind not in _SEGMENT_TYPES:
            raise InvalidTcString(f"segment {number} has the unknown segment type {kind}")
    return TcHeader(
        version=version, created=_time(created), last_updated=_time(last_updated),
        cmp_id=cmp_id, cmp_version=cmp_version, consent_screen=consent_screen,
        consent_language=_ALPHABET[first] + _ALPHABET[second],
        vendor_list_version=vendor_list_version, tcf_policy_version=tcf_policy_version)

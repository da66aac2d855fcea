"""The gate's hot path: set-based queries gather what ``consent.gate.decide`` needs.

No ORM objects, no decryption, no cache: every check reads the committed state, so a
withdrawal is visible to the very next check in every process. Every decision is made
by ``decide`` itself (memoised per distinct input in batches and audiences); the SQL only
gathers its inputs, or, for audiences, preselects rows whose decision is certain (a
consent in force, a customer not erased) and leaves the rare flagged ones to ``decide``.

The statements are plain driver SQL, prepared once per dialect (audit/prepared.py). The
hot API paths run them on a driver connection outside any transaction (``Reader.connect``):
on SQLite (WAL) each statement reads one consistent snapshot without a write lock, on
PostgreSQL in autocommit, as READ COMMITTED would per statement anyway. Paths that must
share the request's transaction (purpose-bound reads, events) run the same SQL on the
session's connection (``Reader.of_session``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import TextClause, select, text
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Session

from audit.prepared import Prepared
from consent import flags as flag_service
from consent import ledger_reads
from consent import purposes as registry
from consent.errors import UnknownPurpose
from consent.gate import UNKNOWN, Answer, Flags, Rule, State, decide
from consent.purposes import LegalBasis
from privacy_hub.gate.reader import Reader as Reader  # re-exported: the gate's callers use it
from privacy_hub.vault.models import Customer

#: ids per statement in batches on backends without json_each (PostgreSQL takes one array)
CHUNK = 10_000


#: the vault's covering index of customers (id, status), migration 0008: named on SQLite,
#: whose planner prefers the primary key's index for equality (a row lookup each)
CUSTOMERS_INDEX = "ix_customers_id_status"
#: the vault's partial index of erased customers (migration 0009): an audience of consents
#: checks each candidate against the few erased customers, not against all of them
ERASED_INDEX = "ix_customers_erased"


def _sql(sql: str, *, sqlite: str | None = None) -> Prepared:
    """One statement, written with ``:name`` parameters, compiled once per dialect.

    The SQLite text may name indexes: ``{check}`` (consent state by customer),
    ``{customers}`` (CUSTOMERS_INDEX) and ``{erased}`` (ERASED_INDEX).
    """

    def build(dialect: Dialect) -> TextClause:
        if dialect.name == "sqlite":
            return text((sqlite or sql).format(
                check=" INDEXED BY ix_consent_state_check",
                customers=f" INDEXED BY {CUSTOMERS_INDEX}",
                erased=f" INDEXED BY {ERASED_INDEX}"))
        return text(sql.format(check="", customers="", erased=""))

    return Prepared(build)


_OBJECTIONS_JOIN = "LEFT JOIN objections o ON o.customer_id = c.id AND o.purpose IN (:purpose, '*')"
#: what decide needs of a customer, after their id
_INPUT_FIELDS = ("c.status, s.status, s.purpose_version, s.expires_at, f.restricted, f.erased, "
                 "f.suppressed, o.purpose, o.compelling_grounds IS NOT NULL")
_INPUT_COLUMNS = "c.id, " + _INPUT_FIELDS

#: whether the customer bought something (for purposes on the soft opt-in)
_RELATIONSHIP = ("EXISTS (SELECT 1 FROM customer_relationships r "
                 "WHERE r.customer_id = c.id)")
#: one round trip for a single check: the purpose, and the customer's inputs if they exist
#: (two rows when the customer objects both to this purpose and to all direct marketing);
#: the customer relationship is looked up only for a purpose on the soft opt-in; the
#: state's ledger event, receipt and notice version come from the check index (R-GATE-03);
#: for a direct-marketing purpose, the job of a pending Art. 14 notice (R-DEAD-05)
_SINGLE = _sql(
    'SELECT p.legal_basis, p.version, p.direct_marketing, ' + _INPUT_COLUMNS + ', '  # noqa: S608
    f'p.soft_opt_in, CASE WHEN p.soft_opt_in THEN {_RELATIONSHIP} END, '
    's.last_event_id, s.receipt_id, s.notice_version, '
    'CASE WHEN p.direct_marketing THEN (SELECT n.job_id FROM art14_notices n '
    'WHERE n.customer_id = c.id AND n.triggered_at IS NULL) END '
    'FROM purposes p '
    'LEFT JOIN customers c{customers} ON c.id = :customer_id '
    'LEFT JOIN consent_state s{check} ON s.customer_id = c.id AND s.purpose = :purpose '
    'LEFT JOIN processing_flags f ON f.customer_id = c.id '
    + _OBJECTIONS_JOIN + ' WHERE p."key" = :purpose')
_PURPOSE = _sql('SELECT legal_basis, version, direct_marketing, fields, soft_opt_in '
                'FROM purposes WHERE "key" = :purpose')
_MANY_TAIL = ("LEFT JOIN consent_state s{check} ON s.customer_id = c.id AND s.purpose = :purpose "
              "LEFT JOIN processing_flags f ON f.customer_id = c.id " + _OBJECTIONS_JOIN)


def _many(fields: str, joins: str, groups: int, extra: str | None = None) -> Prepared:
    """Many customers in one statement: SQLite walks a JSON array of (sorted) ids, so the
    statement is the same for any number of them; PostgreSQL takes one array parameter,
    unnested and joined (``c.id = ANY(:ids)`` made the planner scan all customers in
    parallel at 1,000,000 of them: 350-570 ms a batch against 265-290 ms by the index).
    Customers with the same inputs (the first ``groups`` fields) come back as one row
    with their ids joined by commas: a handful of rows for 10,000 customers, not 10,000
    (each row fetched costs a tuple, and on SQLite a hand-over of the GIL; all of that
    was a quarter of a batch's CPU). ``extra``: a text joined the same way before the ids
    (never NULL, which the aggregate would skip): both aggregates step through a group's
    rows together, so its items line up with the ids."""
    grouped = "GROUP BY " + ", ".join(str(n) for n in range(1, groups + 1))
    pg_extra = f"string_agg({extra}, ','), " if extra else ""
    sqlite_extra = f"group_concat({extra}), " if extra else ""
    return _sql(
        f"SELECT {fields}, {pg_extra}string_agg(c.id, ',') "  # noqa: S608
        f"FROM unnest(CAST(:ids AS text[])) j(id) JOIN customers c ON c.id = j.id "
        f"{joins} {grouped}",
        sqlite=f"SELECT {fields}, {sqlite_extra}group_concat(c.id) "  # noqa: S608
               f"FROM json_each(:ids) j JOIN customers c{{customers}} ON c.id = j.value "
               f"{joins} {grouped}")


_MANY = _many(_INPUT_FIELDS, _MANY_TAIL, 9)
#: the same for a consent purpose (R-GATE-03): grouped by notice version too, with each
#: customer's ledger event and receipt as "event:receipt" (UUIDs: neither separator can
#: occur in them) joined beside the ids: still one row per distinct input, not per id
_MANY_CONSENT = _many(_INPUT_FIELDS + ", s.notice_version", _MANY_TAIL, 10,
                      extra="COALESCE(s.last_event_id, '') || ':' || COALESCE(s.receipt_id, '')")
#: the same for a purpose on the soft opt-in, with whether each customer bought something
_MANY_SOFT = _many(_INPUT_FIELDS + ", r.customer_id IS NOT NULL",
                   _MANY_TAIL + " LEFT JOIN customer_relationships r ON r.customer_id = c.id", 10)
#: audience candidates, in customer id order: a consent in force (the covering index
#: ix_consent_state_audience), or, for other bases, every customer; never the erased
_CANDIDATES_CONSENT = _sql(
    "SELECT s.customer_id FROM consent_state s "
    "WHERE s.purpose = :purpose AND s.status = 'granted' AND s.customer_id > :after "
    "AND s.purpose_version >= :version AND (s.expires_at IS NULL OR s.expires_at > :now) "
    "AND NOT EXISTS (SELECT 1 FROM customers e{erased} WHERE e.id = s.customer_id "
    "AND e.status = 'erased') ORDER BY s.customer_id LIMIT :n")
_CANDIDATES_CUSTOMERS = _sql(
    "SELECT r.customer_id FROM customer_relationships r WHERE r.customer_id > :after "
    "AND NOT EXISTS (SELECT 1 FROM customers e{erased} WHERE e.id = r.customer_id "
    "AND e.status = 'erased') ORDER BY r.customer_id LIMIT :n")
_CANDIDATES_ALL = _sql(
    "SELECT c.id FROM customers c WHERE c.id > :after AND c.status != 'erased' "
    "ORDER BY c.id LIMIT :n")
#: what can still deny a candidate, for one range of ids: flags and objections (rare rows)
_FLAGGED = _sql(
    "SELECT customer_id, restricted, erased, suppressed FROM processing_flags "
    "WHERE customer_id > :after AND customer_id <= :last AND (restricted OR erased OR suppressed)")
_OBJECTED = _sql(
    "SELECT customer_id, purpose, compelling_grounds IS NOT NULL FROM objections "
    "WHERE customer_id > :after AND customer_id <= :last AND purpose IN (:purpose, '*')")


@dataclass(frozen=True, slots=True)
class Group:
    """Customers who share an answer: their ids and, where the answer rests on each one's
    consent state, their proofs "event id:receipt id" (R-GATE-03; either id empty where
    none is known) joined by commas in the order of the ids."""

    answer: Answer
    ids: list[str]
    proofs: str | None = None


@dataclass(frozen=True)
class PurposeInfo:
    rule: Rule
    fields: str  # JSON list


def _rule(key: str, legal_basis: str, version: int, direct_marketing: Any,
          soft_opt_in: Any) -> Rule:
    return Rule(key, LegalBasis(legal_basis), version, bool(direct_marketing), bool(soft_opt_in))


def _flags(purpose: str, customer_status: str, restricted: Any, erased: Any,
           objections: Sequence[tuple[str, Any]], relationship: Any = False,
           suppressed: Any = False) -> Flags:
    """The customer's flags from their processing flags and objections rows."""
    objected = frozenset(p for p, _ in objections)
    grounds = frozenset(p for p, g in objections if g and p == purpose)
    return Flags(exists=True, erased=bool(erased) or customer_status == "erased",
                 restricted=bool(restricted), objections=objected, compelling_grounds=grounds,
                 customer_relationship=bool(relationship), suppressed=bool(suppressed))


class Checker:
    """Answers "may we?" for one customer, many, or a whole audience."""

    # -- purposes --------------------------------------------------------------------
    def purpose(self, reader: Reader, purpose: str) -> PurposeInfo:
        rows = reader.rows(_PURPOSE, {"purpose": purpose})
        if not rows:
            raise UnknownPurpose(purpose)
        basis, version, dm, fields, soft = rows[0]
        return PurposeInfo(_rule(purpose, basis, version, dm, soft), fields)

    def rule(self, session: Session, purpose: str) -> PurposeInfo:
        return self.purpose(Reader.of_session(session), purpose)

    # -- one customer ----------------------------------------------------------------
    def decide_one(self, reader: Reader, customer_id: str | None, purpose: str,
                   now: datetime, art14_jobs: list[str] | None = None) -> Answer:
        """The decision for one customer (None: an id no customer can have). Given
        ``art14_jobs``, the job of the customer's pending Art. 14 notice is appended to it
        when the purpose is direct marketing (R-DEAD-05: its first use sends the notice)."""
        rows = reader.rows(_SINGLE, {"purpose": purpose, "customer_id": customer_id or ""})
        if not rows:
            raise UnknownPurpose(purpose)
        basis, version, dm, cid, cstatus, status, pversion, expires, restricted, erased, \
            suppressed, _, _, soft, relationship, event_id, receipt_id, notice, art14 = rows[0]
        if art14 is not None and art14_jobs is not None:
            art14_jobs.append(str(art14))
        rule = _rule(purpose, basis, version, dm, soft)
        if cid is None:
            return decide(rule, None, UNKNOWN, now)
        state = None if status is None else State(status, pversion, reader.time_value(expires),
                                                   event_id, receipt_id, notice)
        objections = [(r[11], r[12]) for r in rows if r[11] is not None]
        return decide(rule, state, _flags(purpose, cstatus, restricted, erased, objections,
                                          relationship, suppressed), now)

    def check(self, session: Session, customer_id: str, purpose: str,
              now: datetime) -> Answer:
        return self.decide_one(Reader.of_session(session), customer_id, purpose, now)

    # -- many customers --------------------------------------------------------------
    def answer_groups(self, reader: Reader, customer_ids: Sequence[str], purpose: str,
                      now: datetime, *, proofs: bool = False) -> tuple[Rule, list[Group]]:
        """The decisions for ``customer_ids`` (sorted, without repeats, each a possible
        customer id: no comma), as groups of the customers who share an answer (found
        customers only: the others are unknown). With ``proofs``, a consent purpose's
        groups name each customer's ledger event and receipt (R-GATE-03)."""
        rule = self.purpose(reader, purpose).rule
        groups: list[Group] = []
        objected: dict[str, list[tuple[str, Any]]] = {}
        inputs: dict[str, tuple[tuple[Any, ...], str | None]] = {}
        consent = proofs and rule.legal_basis is LegalBasis.CONSENT
        statement = (_MANY_SOFT if rule.soft_opt_in else _MANY_CONSENT if consent else _MANY)
        for start in range(0, len(customer_ids), CHUNK):
            chunk = list(customer_ids[start:start + CHUNK])
            for row in reader.rows(statement, {"purpose": purpose,
                                               "ids": reader.ids_param(chunk)}):
                cstatus, status, pversion, expires, restricted, erased, suppressed, opurpose, \
                    grounds = row[:9]
                relationship = row[9] if rule.soft_opt_in else False
                notice = row[9] if consent else None
                key = (cstatus, status, pversion, expires, restricted, erased, relationship,
                       suppressed, notice)
                ids = row[-1].split(",")
                proof = row[-2] if consent and status is not None else None
                if opurpose is not None:  # rare: decided below with all of its objections
                    each = proof.split(",") if proof is not None else [None] * len(ids)
                    for cid, one in zip(ids, each, strict=True):
                        objected.setdefault(cid, []).append((opurpose, grounds))
                        inputs[cid] = (key, one)
                    continue
                answer = self._decide(reader, rule, purpose, key, (), now)
                groups.append(Group(answer, ids, proof if answer.state is not None else None))
        for cid, objections in objected.items():
            key, one = inputs[cid]
            answer = self._decide(reader, rule, purpose, key, objections, now)
            groups.append(Group(answer, [cid], one if answer.state is not None else None))
        return rule, groups

    def decide_many(self, reader: Reader, customer_ids: Sequence[str | None], purpose: str,
                    now: datetime) -> tuple[list[Answer], Rule]:
        """Decisions in the order of ``customer_ids`` (None: an id no customer can have)."""
        # No customer id holds a comma (they are UUIDs): the statement joins ids with them.
        unique = sorted({c for c in customer_ids if c and "," not in c})
        rule, groups = self.answer_groups(reader, unique, purpose, now)
        found: dict[str, Answer] = {}
        for group in groups:
            found.update(dict.fromkeys(group.ids, group.answer))
        unknown = decide(rule, None, UNKNOWN, now)
        return [found.get(c, unknown) if c else unknown for c in customer_ids], rule

    def check_many(self, session: Session, customer_ids: Sequence[str], purpose: str,
                   now: datetime) -> list[Answer]:
        return self.decide_many(Reader.of_session(session), customer_ids, purpose, now)[0]

    @staticmethod
    def _decide(reader: Reader, rule: Rule, purpose: str, key: tuple[Any, ...],
                objections: Sequence[tuple[str, Any]], now: datetime) -> Answer:
        cstatus, status, pversion, expires, restricted, erased, relationship, suppressed, \
            notice = key
        state = None if status is None else State(status, pversion, reader.time_value(expires),
                                                   notice_version=notice)
        return decide(rule, state, _flags(purpose, cstatus, restricted, erased, objections,
                                          relationship, suppressed), now)

    # -- audiences -------------------------------------------------------------------
    def audience_page(self, reader: Reader, purpose: str, now: datetime, *, after: str | None,
                      limit: int) -> tuple[list[str], str | None]:
        """Ids allowed for ``purpose`` among all customers, in id order, one page.

        Candidates come in id order from an index (a consent in force, a customer who
        bought something for the soft opt-in, or any customer not erased); the processing flags and objections of the candidates' id range are
        read apart (few rows), and only the candidates they name go through ``decide``.
        """
        rule = self.purpose(reader, purpose).rule
        consent = rule.legal_basis is LegalBasis.CONSENT
        sql = (_CANDIDATES_CONSENT if consent
               else _CANDIDATES_CUSTOMERS if rule.soft_opt_in else _CANDIDATES_ALL)
        # what the candidate query established: a consent to the current version in force
        state = State("granted", rule.version) if consent else None
        params: dict[str, Any] = {"purpose": purpose}
        if consent:
            params.update(version=rule.version, now=reader.time_param(now))
        allowed: list[str] = []
        cursor = after or ""
        while True:
            want = limit - len(allowed)
            n = want + want // 32 + 16  # a little more: flagged candidates drop out
            candidates = [r[0] for r in reader.rows(sql, {**params, "after": cursor, "n": n})]
            if not candidates:
                return allowed, None
            denied = self._denied(reader, rule, state, purpose, now, cursor, candidates[-1])
            page = [c for c in candidates if c not in denied] if denied else candidates
            if len(page) >= want:
                allowed += page[:want]
                last = allowed[-1]
                # nothing follows the last candidate of a short read: no further page
                done = len(candidates) < n and last == page[-1]
                return allowed, None if done else last
            allowed += page
            if len(candidates) < n:
                return allowed, None
            cursor = candidates[-1]

    def _denied(self, reader: Reader, rule: Rule, state: State | None, purpose: str,
                now: datetime, after: str, last: str) -> set[str]:
        """Candidates in (after, last] that their flags or objections deny."""
        rng = {"after": after, "last": last}
        flags: dict[str, tuple[Any, Any, Any]] = {
            cid: (restricted, erased, suppressed)
            for cid, restricted, erased, suppressed in reader.rows(_FLAGGED, rng)}
        objections: dict[str, list[tuple[str, Any]]] = {}
        for cid, opurpose, grounds in reader.rows(_OBJECTED, {**rng, "purpose": purpose}):
            objections.setdefault(cid, []).append((opurpose, grounds))
        denied = set()
        for cid in flags.keys() | objections.keys():
            restricted, erased, suppressed = flags.get(cid, (False, False, False))
            # every candidate of a soft opt-in audience bought something
            f = _flags(purpose, "active", restricted, erased, objections.get(cid, ()),
                       rule.soft_opt_in, suppressed)
            if not decide(rule, state, f, now).allowed:
                denied.add(cid)
        return denied

    # -- the past --------------------------------------------------------------------
    def check_at(self, session: Session, customer_id: str, purpose: str, at: datetime) -> Answer:
        """The answer that held at ``at``, rebuilt from the ledger and the flag history."""
        current = self.rule(session, purpose)
        version = registry.version_at(session, purpose, at)
        customer = session.execute(select(Customer.created_at, Customer.erased_at)
                                   .where(Customer.id == customer_id)).first()
        rule = replace(current.rule, version=version or 1)
        if customer is None or customer.created_at > at:
            return decide(rule, None, UNKNOWN, at)
        flags = flag_service.flags_at(session, customer_id, at)
        if rule.soft_opt_in:
            flags = replace(flags, customer_relationship=flag_service.customer_since(
                session, customer_id, at))
        if customer.erased_at is not None and customer.erased_at <= at:
            flags = Flags(exists=True, erased=True)
        return decide(rule, ledger_reads.state_at(session, customer_id, purpose, at), flags, at)

"""The worker leases due jobs in batches and, in a server process, writes its leases and
outcomes and audits a mail's read of its recipient through the process's group committer
(audit.Appender), as the requests do (issue 14: DSAR intake as fast as a consent write).

Real parts: SQLite and PostgreSQL (``db_url``), mails written to the instance's outbox
folder. A hub is "in a server process" once ``create_app`` installed the group committer.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

import audit
from audit.clock import utcnow
from privacy_hub.app import create_app
from privacy_hub.db import transaction
from privacy_hub.hub import Hub
from privacy_hub.jobs import outbox
from privacy_hub.jobs.handler import ClaimedJob, group_committer
from privacy_hub.jobs.outbox import OutboxJob
from privacy_hub.jobs.worker import CLAIM_BATCH, Worker
from tests.conftest import SEED_EMAIL
from tests.hubs import make_hub

ACTOR = audit.Actor("cli", "tests")


@pytest.fixture(params=["own commits", "group committer"])
def hub(request: pytest.FixtureRequest, tmp_path: Path, db_url: str) -> Iterator[Hub]:
    h = make_hub(tmp_path, db_url, base_url="https://hub.example")
    if request.param == "group committer":
        create_app(hub=h)  # installs the process's appender, as `privacy-hub serve` does
    yield h
    h.close()


def add_customer(hub: Hub) -> str:
    with transaction(hub.sessions) as session:
        profile, _ = hub.vault.upsert(session, {"email": SEED_EMAIL, "locale": "de-DE"},
                                      actor=ACTOR)
    return str(profile["id"])


def queue_verification_mails(hub: Hub, customer_id: str, count: int) -> None:
    with transaction(hub.sessions) as session:
        for n in range(count):
            outbox.enqueue_mail(session, template="request_verification",
                                customer_id=customer_id,
                                data={"request_id": f"r-{n}", "request_type": "access"},
                                secrets={"token": f"t{n}"})


def rows(hub: Hub) -> list[OutboxJob]:
    with hub.sessions() as session:
        return list(session.scalars(select(OutboxJob).order_by(OutboxJob.id)))


def mails(hub: Hub) -> list[Path]:
    return sorted((hub.settings.instance_path / "outbox").glob("*.eml"))


def test_the_fixture_runs_the_worker_with_and_without_a_group_committer(
        hub: Hub, request: pytest.FixtureRequest) -> None:
    expected = "group committer" in request.node.callspec.id
    assert (group_committer(hub) is not None) is expected


def test_one_lease_covers_a_batch_and_every_job_runs_once(hub: Hub) -> None:
    """More due jobs than a batch: each is leased, sent and recorded exactly once."""
    customer_id = add_customer(hub)
    queue_verification_mails(hub, customer_id, CLAIM_BATCH + 3)
    worker = Worker(hub)
    leased = worker.claim_many()
    assert len(leased) == CLAIM_BATCH
    assert len({job.lease for job in leased}) == 1 and all(j.attempts == 1 for j in leased)
    # The lease is committed: another worker gets only the rest.
    other = Worker(hub).claim_many()
    assert len(other) == 3 and not {j.id for j in other} & {j.id for j in leased}
    for job in [*leased, *other]:
        worker.run_job(job)
    assert [(r.status, r.attempts) for r in rows(hub)] == [("delivered", 1)] * (CLAIM_BATCH + 3)
    assert len(mails(hub)) == CLAIM_BATCH + 3


def test_run_once_with_a_limit_leases_no_more_than_it_runs(hub: Hub) -> None:
    customer_id = add_customer(hub)
    queue_verification_mails(hub, customer_id, 5)
    assert Worker(hub).run_once(limit=2) == 2
    statuses = sorted((r.status, r.locked_by is None) for r in rows(hub))
    assert statuses == [("delivered", True)] * 2 + [("pending", True)] * 3


def test_a_stopping_worker_gives_back_the_jobs_it_leased_but_did_not_run(hub: Hub) -> None:
    customer_id = add_customer(hub)
    queue_verification_mails(hub, customer_id, 4)
    stop = threading.Event()
    worker = Worker(hub)
    run_job = worker.run_job

    def run_one_then_stop(job: object) -> str:
        stop.set()  # SIGTERM arrives during the first attempt
        return run_job(job)  # type: ignore[arg-type]

    worker.run_job = run_one_then_stop  # type: ignore[method-assign]
    assert worker.run_once(stop) == 1
    left = [r for r in rows(hub) if r.status == "pending"]
    assert len(left) == 3
    # Due again at once for any worker, the attempt that never started not counted.
    assert all(r.locked_by is None and r.locked_until is None and r.attempts == 0
               for r in left)
    assert Worker(hub).run_once() == 3
    assert {r.status for r in rows(hub)} == {"delivered"}


def test_jobs_whose_lease_would_end_before_their_attempt_are_leased_again(
        tmp_path: Path, db_url: str) -> None:
    """An attempt never starts later than lease - timeout after its claim (another worker
    could take the job while it runs): the rest of the batch is given back, then leased
    afresh, and each job still counts one attempt."""
    hub = make_hub(tmp_path, db_url, worker_lease_seconds=2.0)  # attempts time out after 1 s
    try:
        customer_id = add_customer(hub)
        queue_verification_mails(hub, customer_id, 3)
        # The claim, its budget and the first start at once; then 1.5 s later for good.
        moments = iter([0.0, 0.0, 0.0])

        def clock() -> datetime:
            return utcnow() + timedelta(seconds=next(moments, 1.5))

        worker = Worker(hub, clock=clock)
        leases: list[str] = []
        claim_many = worker.claim_many

        def recording(limit: int = CLAIM_BATCH) -> list[ClaimedJob]:
            got = claim_many(limit)
            leases.extend(job.lease for job in got)
            return got

        worker.claim_many = recording  # type: ignore[method-assign]
        assert worker.run_once() == 3
        assert len(leases) == 5 and len(set(leases)) == 2  # 3 leased, 2 of them again
        assert [(r.status, r.attempts) for r in rows(hub)] == [("delivered", 1)] * 3
    finally:
        hub.close()


def test_the_mailers_read_is_audited_once_and_names_no_address(hub: Hub) -> None:
    """R-AUD: a read of personal data is audited (customer id only), durable before the
    mail leaves; the address and locale reach the mail, in the customer's language."""
    customer_id = add_customer(hub)
    queue_verification_mails(hub, customer_id, 1)
    assert Worker(hub).run_once() == 1
    (eml,) = mails(hub)
    raw = eml.read_bytes()
    assert f"To: {SEED_EMAIL}".encode() in raw and b"Content-Language: de" in raw
    with hub.sessions() as session:
        reads = audit.entries(session, action="customer.read", customer_id=customer_id)
        everything = audit.entries(session)
    assert [(e.actor_type, e.actor_id, json.loads(e.details)) for e in reads] == [
        ("job", "mailer", {"fields": ["email", "locale"]})]
    assert all(SEED_EMAIL not in str(e.details) for e in everything)
    with hub.sessions() as session:
        assert audit.verify_chain(session, hub.audit_public_keys()).ok


def test_a_mail_to_an_erased_customer_is_cancelled_unread(hub: Hub) -> None:
    customer_id = add_customer(hub)
    queue_verification_mails(hub, customer_id, 1)
    with transaction(hub.sessions) as session:
        hub.vault.crypto_shred(session, customer_id, actor=ACTOR)
    assert Worker(hub).run_once() == 1
    (job,) = rows(hub)
    assert (job.status, job.last_error) == ("cancelled", "the customer was erased")
    assert mails(hub) == []
    with hub.sessions() as session:
        assert audit.entries(session, action="customer.read", customer_id=customer_id) == []


def test_a_mail_to_nobody_known_is_cancelled(hub: Hub) -> None:
    queue_verification_mails(hub, "00000000-0000-4000-8000-000000000000", 1)
    assert Worker(hub).run_once() == 1
    (job,) = rows(hub)
    assert (job.status, job.last_error) == ("cancelled", "no such customer")

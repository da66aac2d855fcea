"""The vault on real databases: encryption at rest, cell binding, crypto-shredding, rotation."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text, update

import audit
from privacy_hub.db import transaction
from privacy_hub.hub import Hub
from privacy_hub.vault.errors import (
    CustomerErased,
    DecryptionError,
    DuplicateIdentifier,
    KeyDestroyed,
)
from privacy_hub.vault.keystore import CustomerKey, KeyEncryptionKey
from privacy_hub.vault.models import Customer
from tests.conftest import SEED_EMAIL, SEED_NAME, SEED_PHONE
from tests.hubs import make_hub, make_settings, migrate
from tests.pg import PostgresServer, _find_bin

ACTOR = audit.Actor("cli", "tests")
SEED = {"email": SEED_EMAIL, "first_name": "Ada", "last_name": SEED_NAME, "phone": SEED_PHONE,
        "external_id": "ext-seed-1", "address": {"city": "London", "country": "GB"},
        "attributes": {"tier": "gold"}}


@pytest.fixture
def hub(tmp_path: Path, db_url: str) -> Iterator[Hub]:
    h = make_hub(tmp_path, db_url)
    yield h
    h.close()


def create(hub: Hub, fields: dict[str, Any]) -> dict[str, Any]:
    with transaction(hub.sessions) as session:
        profile, _ = hub.vault.upsert(session, fields, actor=ACTOR)
    return profile


def raw_database_text(hub: Hub, db_url: str, pg: PostgresServer | None) -> bytes:
    """Everything the database holds, as bytes: the SQLite files, or a real pg_dump."""
    if db_url.startswith("sqlite"):
        path = Path(db_url.removeprefix("sqlite:///"))
        data = b""
        for suffix in ("", "-wal", "-shm"):
            p = Path(str(path) + suffix)
            if p.exists():
                data += p.read_bytes()
        return data
    assert pg is not None
    dbname = db_url.rsplit("/", 1)[1]
    return subprocess.run(
        [_find_bin("pg_dump"), "-h", "127.0.0.1", "-p", str(pg.port), "-U", "postgres",
         "--data-only", dbname], check=True, capture_output=True).stdout


def test_database_holds_no_personal_data_in_clear(
        hub: Hub, db_url: str, request: pytest.FixtureRequest) -> None:
    """R-SEC-01: a dump of the database yields no seeded email, name or phone."""
    profile = create(hub, SEED)
    with transaction(hub.sessions) as session:
        assert hub.vault.read(session, profile["id"], actor=ACTOR)["email"] == SEED_EMAIL
        hub.vault.lookup(session, email=SEED_EMAIL, actor=ACTOR)
    pg = request.getfixturevalue("pg_server") if db_url.startswith("postgresql") else None
    dump = raw_database_text(hub, db_url, pg)
    assert len(dump) > 1000  # the dump really has content
    for needle in (SEED_EMAIL, SEED_NAME, SEED_PHONE, "ext-seed-1", "London"):
        assert needle.encode() not in dump, needle
        assert needle.lower().encode() not in dump.lower(), needle


def test_profile_round_trips_every_field(hub: Hub) -> None:
    profile = create(hub, {**SEED, "birth_date": "1815-12-10", "locale": "en-GB"})
    with transaction(hub.sessions) as session:
        read = hub.vault.read(session, profile["id"], actor=ACTOR)
    assert read["email"] == SEED_EMAIL.lower()
    assert read["phone"] == SEED_PHONE
    assert read["address"] == {"city": "London", "country": "GB"}
    assert read["attributes"] == {"tier": "gold"}
    assert read["birth_date"] == "1815-12-10"
    assert read["status"] == "active"


@pytest.mark.parametrize("target", ["other_customer", "other_column"])
def test_ciphertext_copied_elsewhere_fails_to_decrypt(hub: Hub, target: str) -> None:
    """A ciphertext pasted into another customer's row or another column is refused."""
    a = create(hub, SEED)
    b = create(hub, {"email": "bob@example.net", "first_name": "Bob"})
    with transaction(hub.sessions) as session:
        email_ct = session.scalar(select(Customer.email_ct).where(Customer.id == a["id"]))
        if target == "other_customer":
            session.execute(update(Customer).where(Customer.id == b["id"]).values(email_ct=email_ct))
            victim = b["id"]
        else:
            session.execute(update(Customer).where(Customer.id == a["id"])
                            .values(first_name_ct=email_ct))
            victim = a["id"]
    with hub.sessions() as session, pytest.raises(DecryptionError) as err:
        hub.vault.read(session, victim, actor=ACTOR)
    assert "does not authenticate" in str(err.value)
    assert SEED_EMAIL not in str(err.value)


def test_lookup_by_each_identifier_finds_only_exact_matches(hub: Hub) -> None:
    a = create(hub, SEED)
    create(hub, {"email": "someone.else@example.org", "external_id": "ext-2"})
    with transaction(hub.sessions) as session:
        assert hub.vault.lookup(session, email="  " + SEED_EMAIL.upper(), actor=ACTOR) == [a["id"]]
        assert hub.vault.lookup(session, phone="+49 151 12345678", actor=ACTOR) == [a["id"]]
        assert hub.vault.lookup(session, external_id="ext-seed-1", actor=ACTOR) == [a["id"]]
        assert hub.vault.lookup(session, email="nobody@example.org", actor=ACTOR) == []


def test_upsert_matches_external_id_then_email(hub: Hub) -> None:
    a = create(hub, SEED)
    with transaction(hub.sessions) as session:
        same, created = hub.vault.upsert(session, {"external_id": "ext-seed-1", "first_name": "Augusta"},
                                         actor=ACTOR)
        assert not created and same["id"] == a["id"] and same["first_name"] == "Augusta"
        again, created = hub.vault.upsert(session, {"email": SEED_EMAIL, "locale": "en"}, actor=ACTOR)
        assert not created and again["id"] == a["id"]
        with pytest.raises(DuplicateIdentifier):
            hub.vault.upsert(session, {"email": SEED_EMAIL, "external_id": "another-shop-account"},
                             actor=ACTOR)


def test_crypto_shred_leaves_a_tombstone_and_frees_the_email(hub: Hub) -> None:
    a = create(hub, SEED)
    with transaction(hub.sessions) as session:
        assert hub.vault.crypto_shred(session, a["id"], actor=ACTOR)
    with transaction(hub.sessions) as session:
        tomb = hub.vault.read(session, a["id"], actor=ACTOR)
        assert tomb == {"id": a["id"], "status": "erased", "erased_at": tomb["erased_at"]}
        assert hub.vault.lookup(session, email=SEED_EMAIL, actor=ACTOR) == []
        assert session.get(CustomerKey, (a["id"], "default")) is None
        with pytest.raises(CustomerErased):
            hub.vault.rectify(session, a["id"], {"first_name": "X"}, actor=ACTOR)
    # The same email signs up again as a new, unlinked customer.
    b = create(hub, {"email": SEED_EMAIL})
    assert b["id"] != a["id"]


@pytest.fixture
def split_hub(tmp_path: Path, db_url: str, request: pytest.FixtureRequest) -> Iterator[Hub]:
    """A hub whose key store is a separate database, as operators may run it."""
    if db_url.startswith("sqlite"):
        keystore_url = f"sqlite:///{tmp_path / 'keystore.db'}"
    else:
        pg: PostgresServer = request.getfixturevalue("pg_server")
        keystore_url = pg.create_database(f"ks_{uuid.uuid4().hex[:10]}")
    h = make_hub(tmp_path, db_url, keystore_url=keystore_url)
    yield h
    h.close()


def _snapshot(db_url: str, tmp_path: Path, pg: PostgresServer | None) -> str:
    """A backup copy of the main database, taken with the database's own tools."""
    if db_url.startswith("sqlite"):
        src = sqlite3.connect(db_url.removeprefix("sqlite:///"))
        dst_path = tmp_path / "backup.db"
        dst = sqlite3.connect(dst_path)
        src.backup(dst)
        src.close()
        dst.close()
        return f"sqlite:///{dst_path}"
    assert pg is not None
    name = f"bk_{uuid.uuid4().hex[:10]}"
    dump = subprocess.run([_find_bin("pg_dump"), "-h", "127.0.0.1", "-p", str(pg.port), "-U",
                           "postgres", db_url.rsplit("/", 1)[1]], check=True,
                          capture_output=True).stdout
    url = pg.create_database(name)
    subprocess.run([_find_bin("psql"), "-q", "-h", "127.0.0.1", "-p", str(pg.port), "-U",
                    "postgres", "-d", name], input=dump, check=True, capture_output=True)
    return url


def test_backup_taken_before_erasure_is_unreadable_once_the_key_is_gone(
        split_hub: Hub, db_url: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """R-ERASE-06: no field of an erased customer decrypts from a pre-erasure backup."""
    hub = split_hub
    a = create(hub, SEED)
    b = create(hub, {"email": "kept@example.org", "first_name": "Kept"})
    pg = request.getfixturevalue("pg_server") if db_url.startswith("postgresql") else None
    backup_url = _snapshot(db_url, tmp_path, pg)
    with transaction(hub.sessions) as session:
        hub.vault.crypto_shred(session, a["id"], actor=ACTOR)

    # Restore the backup as the main database, next to the live key store.
    restored = Hub.open(hub.settings.with_(database_url=backup_url))
    try:
        with restored.sessions() as session:
            row = session.get(Customer, a["id"])
            assert row is not None and row.email_ct is not None and row.status == "active"
            with pytest.raises(KeyDestroyed):
                restored.keyring.data_key(session, a["id"])
            with pytest.raises(KeyDestroyed):
                restored.vault.profile(session, row)
            # The other customer's data in the same backup is still readable.
            other = session.get(Customer, b["id"])
            assert other is not None
            assert restored.vault.profile(session, other)["first_name"] == "Kept"
    finally:
        restored.close()


def test_rotation_rewraps_every_key_and_retires_the_old_version(hub: Hub) -> None:
    ids = [create(hub, {"email": f"c{i}@example.org", "first_name": f"N{i}"})["id"] for i in range(30)]
    count = hub.keyring.rotate(hub.sessions, batch_size=7)
    assert count == 30
    with hub.sessions() as session:
        versions = {k.version: k for k in session.scalars(select(KeyEncryptionKey))}
        assert versions[1].state == "retired" and versions[1].wrapped is None
        assert versions[2].state == "primary"
        assert set(session.scalars(select(CustomerKey.kek_version))) == {2}
    other = Hub.open(hub.settings)  # a fresh process's view: no cached keys
    try:
        with other.sessions() as session:
            for i, cid in enumerate(ids):
                assert other.vault.profile(session, session.get(Customer, cid))["first_name"] == f"N{i}"
    finally:
        other.close()


def test_rotation_during_concurrent_reads_fails_no_read(hub: Hub) -> None:
    """Keys rotate while readers in other 'processes' (own key caches) keep reading."""
    ids = [create(hub, {"email": f"r{i}@example.org", "first_name": f"R{i}"})["id"] for i in range(120)]
    readers = [Hub.open(hub.settings) for _ in range(3)]
    errors: list[BaseException] = []
    reads = [0]
    stop = threading.Event()

    def read_loop(reader: Hub, offset: int) -> None:
        i = offset
        while not stop.is_set():
            cid = ids[i % len(ids)]
            try:
                with reader.sessions() as session:
                    row = session.get(Customer, cid)
                    assert row is not None
                    assert reader.vault.profile(session, row)["first_name"] == f"R{ids.index(cid)}"
                reads[0] += 1
            except BaseException as exc:
                errors.append(exc)
                return
            i += 7

    threads = [threading.Thread(target=read_loop, args=(r, n)) for n, r in enumerate(readers)]
    for t in threads:
        t.start()
    try:
        for _ in range(3):
            hub.keyring.rotate(hub.sessions, batch_size=10)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=60)
        for r in readers:
            r.close()
    assert not errors, errors[:3]
    assert reads[0] > 50
    with hub.sessions() as session:
        assert set(session.scalars(select(CustomerKey.kek_version))) == {4}


def test_migrations_match_the_models(db_url: str, tmp_path: Path) -> None:
    """Alembic's latest schema equals what the models declare."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from privacy_hub.db import make_engine
    from privacy_hub.migrations import keystore_metadata, main_metadata

    settings = make_settings(tmp_path, db_url)
    migrate(settings)
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"compare_type": True})
            diff = compare_metadata(ctx, main_metadata() + keystore_metadata())
        assert diff == []
        with engine.connect() as conn:
            tables = set(conn.execute(text(
                "SELECT name FROM sqlite_master WHERE type='table'" if db_url.startswith("sqlite")
                else "SELECT tablename FROM pg_tables WHERE schemaname='public'")).scalars())
        assert {"customers", "audit_entries", "keystore_customer_keys", "systems"} <= tables
    finally:
        engine.dispose()
    shutil.rmtree(tmp_path / "instance", ignore_errors=True)

"""consent evidence kept apart from the ledger, sealed, purged after its retention (R-CREC-06)

Each ledger event's evidence moves from consent_events.evidence to consent_evidence; the
event keeps the SHA-256 of its canonical JSON (evidence_sha256). Nothing that is chained
or signed changes: audit entries of consent decisions never held the evidence and
receipts never signed it, so the audit chain and every receipt verify as before.

A migration has no keys, so existing evidence arrives in consent_evidence.legacy_json
and the hub seals it under each customer's key when it next starts
(privacy_hub/vault/proof.py); evidence of customers already erased is not copied at all
but recorded as purged at their erasure.

Downgrade puts back what is still unsealed; sealed evidence cannot be opened here and
comes back as {} (the digests are dropped with it).

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-20 10:00:00
"""

import hashlib
import json
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

import audit.sql

revision = '0019'
down_revision = '0018'
branch_labels = None
depends_on = None

_BATCH = 500

_events = sa.table('consent_events', sa.column('id', sa.String()),
                   sa.column('customer_id', sa.String()), sa.column('evidence', sa.Text()),
                   sa.column('evidence_sha256', sa.String()))
_customers = sa.table('customers', sa.column('id', sa.String()), sa.column('status', sa.String()),
                      sa.column('erased_at', audit.sql.UTCDateTime()))
_evidence = sa.table('consent_evidence', sa.column('event_id', sa.String()),
                     sa.column('customer_id', sa.String()),
                     sa.column('evidence_ct', sa.LargeBinary()),
                     sa.column('legacy_json', sa.Text()),
                     sa.column('purged_at', audit.sql.UTCDateTime()),
                     sa.column('purge_reason', sa.String()))


def _canonical(value: object) -> str:
    # As consent/proof.py canonical(): what is sealed and hashed (kept here, frozen).
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def upgrade() -> None:
    op.create_table(
        'consent_evidence',
        sa.Column('event_id', sa.String(length=36), nullable=False),
        sa.Column('customer_id', sa.String(length=36), nullable=False),
        sa.Column('evidence_ct', sa.LargeBinary(), nullable=True),
        sa.Column('legacy_json', sa.Text(), nullable=True),
        sa.Column('purged_at', audit.sql.UTCDateTime(), nullable=True),
        sa.Column('purge_reason', sa.String(length=16), nullable=True),
        sa.PrimaryKeyConstraint('event_id', name=op.f('pk_consent_evidence')),
    )
    with op.batch_alter_table('consent_evidence', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_consent_evidence_customer_id'), ['customer_id'],
                              unique=False)
        batch_op.create_index('ix_consent_evidence_legacy', ['event_id'], unique=False,
                              sqlite_where=sa.text("legacy_json IS NOT NULL"),
                              postgresql_where=sa.text("legacy_json IS NOT NULL"))
    with op.batch_alter_table('consent_events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('evidence_sha256', sa.String(length=64), nullable=True))
    _move_evidence(op.get_bind())
    with op.batch_alter_table('consent_events', schema=None) as batch_op:
        batch_op.drop_column('evidence')


def _move_evidence(conn: sa.Connection) -> None:
    now = datetime.now(UTC)
    erased = {cid: at for cid, at in conn.execute(
        sa.select(_customers.c.id, _customers.c.erased_at)
        .where(_customers.c.status == 'erased'))}
    after = ''
    while True:
        rows = conn.execute(
            sa.select(_events.c.id, _events.c.customer_id, _events.c.evidence)
            .where(_events.c.id > after).order_by(_events.c.id).limit(_BATCH)).all()
        if not rows:
            return
        after = rows[-1].id
        digests, moved = [], []
        for event_id, customer_id, raw in rows:
            value = json.loads(raw) if raw else {}
            if not isinstance(value, dict) or not value:
                continue
            text = _canonical(value)
            digests.append({'id_': event_id,
                            'digest': hashlib.sha256(text.encode('utf-8')).hexdigest()})
            gone = customer_id in erased
            moved.append({'event_id': event_id, 'customer_id': customer_id,
                          'evidence_ct': None, 'legacy_json': None if gone else text,
                          'purged_at': (erased[customer_id] or now) if gone else None,
                          'purge_reason': 'erasure' if gone else None})
        if digests:
            conn.execute(_events.update().where(_events.c.id == sa.bindparam('id_'))
                         .values(evidence_sha256=sa.bindparam('digest')), digests)
            conn.execute(_evidence.insert(), moved)


def downgrade() -> None:
    with op.batch_alter_table('consent_events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('evidence', sa.Text(), nullable=False,
                                      server_default='{}'))
    conn = op.get_bind()
    back = [{'id_': event_id, 'evidence': text} for event_id, text in conn.execute(
        sa.select(_evidence.c.event_id, _evidence.c.legacy_json)
        .where(_evidence.c.legacy_json.is_not(None)))]
    if back:
        conn.execute(_events.update().where(_events.c.id == sa.bindparam('id_'))
                     .values(evidence=sa.bindparam('evidence')), back)
    with op.batch_alter_table('consent_events', schema=None) as batch_op:
        batch_op.alter_column('evidence', server_default=None)
        batch_op.drop_column('evidence_sha256')
    with op.batch_alter_table('consent_evidence', schema=None) as batch_op:
        batch_op.drop_index('ix_consent_evidence_legacy')
        batch_op.drop_index(batch_op.f('ix_consent_evidence_customer_id'))
    op.drop_table('consent_evidence')

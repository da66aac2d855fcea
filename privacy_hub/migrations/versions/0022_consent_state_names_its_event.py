"""consent_state: the receipt id and notice version of the state's ledger event (R-GATE-03)

A consent check names the ledger event its answer rests on, that event's receipt and the
notice version shown; the state row carries them, so a check stays one indexed read (the
check index covers them). Existing rows are filled from the ledger.

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-08 10:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0022'
down_revision = '0021'
branch_labels = None
depends_on = None

_OLD_CHECK = ['customer_id', 'purpose', 'status', 'purpose_version', 'expires_at']
_NEW_CHECK = _OLD_CHECK + ['last_event_id', 'receipt_id', 'notice_version']


def upgrade() -> None:
    with op.batch_alter_table('consent_state', schema=None) as batch_op:
        batch_op.add_column(sa.Column('receipt_id', sa.String(length=36), nullable=True))
        batch_op.add_column(sa.Column('notice_version', sa.String(length=64), nullable=True))
    # One statement on both backends: each state from the event it names.
    op.execute(
        "UPDATE consent_state SET "
        "receipt_id = (SELECT e.receipt_id FROM consent_events e "
        "WHERE e.id = consent_state.last_event_id), "
        "notice_version = (SELECT e.notice_version FROM consent_events e "
        "WHERE e.id = consent_state.last_event_id)")
    with op.batch_alter_table('consent_state', schema=None) as batch_op:
        batch_op.drop_index('ix_consent_state_check')
        batch_op.create_index('ix_consent_state_check', _NEW_CHECK, unique=False)


def downgrade() -> None:
    with op.batch_alter_table('consent_state', schema=None) as batch_op:
        batch_op.drop_index('ix_consent_state_check')
        batch_op.create_index('ix_consent_state_check', _OLD_CHECK, unique=False)
        batch_op.drop_column('notice_version')
        batch_op.drop_column('receipt_id')

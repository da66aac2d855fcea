"""consent_receipt_keys: every receipt signing key's public half, current and retired

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-07 20:30:00
"""

import sqlalchemy as sa
from alembic import op

import audit.sql

revision = '0020'
down_revision = '0019'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The current key is published here by the first process that opens the hub after the
    # upgrade (its public half needs the key store to compute).
    op.create_table('consent_receipt_keys',
    sa.Column('key_id', sa.String(length=64), nullable=False),
    sa.Column('public_key', sa.LargeBinary(length=32), nullable=False),
    sa.Column('created_at', audit.sql.UTCDateTime(timezone=True), nullable=False),
    sa.Column('retired_at', audit.sql.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('key_id', name=op.f('pk_consent_receipt_keys'))
    )


def downgrade() -> None:
    op.drop_table('consent_receipt_keys')

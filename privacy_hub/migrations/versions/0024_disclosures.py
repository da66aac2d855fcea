"""disclosures: the log of which system received which customer's data, for which purpose and when

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-10 10:00:00
"""

import sqlalchemy as sa
from alembic import op

import audit.sql

revision = '0024'
down_revision = '0023'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # R-ACC-03: names only (system, purpose, field names), never a personal value. Gate
    # answers stay in consent_checks and are merged in when the log is read.
    op.create_table('disclosures',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('customer_id', sa.String(length=36), nullable=False),
    sa.Column('system', sa.String(length=64), nullable=False),
    sa.Column('purpose', sa.String(length=100), nullable=True),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('fields', sa.Text(), nullable=True),
    sa.Column('event_type', sa.String(length=64), nullable=True),
    sa.Column('disclosed_at', audit.sql.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint("kind IN ('data_read', 'webhook')", name=op.f('ck_disclosures_kind')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_disclosures'))
    )
    with op.batch_alter_table('disclosures', schema=None) as batch_op:
        batch_op.create_index('ix_disclosures_customer', ['customer_id', 'disclosed_at'],
                              unique=False)
        batch_op.create_index(batch_op.f('ix_disclosures_disclosed_at'), ['disclosed_at'],
                              unique=False)


def downgrade() -> None:
    with op.batch_alter_table('disclosures', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_disclosures_disclosed_at'))
        batch_op.drop_index('ix_disclosures_customer')
    op.drop_table('disclosures')

"""art14_notices: customers whose imported data still awaits its Art. 14 notice

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-14 10:00:00
"""

import sqlalchemy as sa
from alembic import op

import audit.sql

revision = '0023'
down_revision = '0022'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('art14_notices',
    sa.Column('customer_id', sa.String(length=36), nullable=False),
    sa.Column('source', sa.String(length=100), nullable=False),
    sa.Column('obtained_at', audit.sql.UTCDateTime(timezone=True), nullable=False),
    sa.Column('due_at', audit.sql.UTCDateTime(timezone=True), nullable=False),
    sa.Column('job_id', sa.String(length=36), nullable=False),
    sa.Column('triggered_at', audit.sql.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('customer_id', name=op.f('pk_art14_notices'))
    )


def downgrade() -> None:
    op.drop_table('art14_notices')

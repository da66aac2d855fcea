"""scheduled_runs: when the daily retention pass last started and ended (R-RET-01)

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-10 10:00:00
"""

import sqlalchemy as sa
from alembic import op

import audit.sql

revision = '0021'
down_revision = '0020'
branch_labels = None
depends_on = None


def upgrade() -> None:
    table = op.create_table('scheduled_runs',
    sa.Column('name', sa.String(length=32), nullable=False),
    sa.Column('started_at', audit.sql.UTCDateTime(timezone=True), nullable=True),
    sa.Column('finished_at', audit.sql.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_scheduled_runs'))
    )
    # The row the workers' conditional update claims; never run yet.
    op.bulk_insert(table, [{'name': 'retention', 'started_at': None, 'finished_at': None}])


def downgrade() -> None:
    op.drop_table('scheduled_runs')

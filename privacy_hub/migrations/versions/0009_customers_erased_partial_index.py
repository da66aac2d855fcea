"""a partial index of erased customers, for audiences of consents

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-23 08:40:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('customers', schema=None) as batch_op:
        batch_op.create_index('ix_customers_erased', ['id'], unique=False,
                              sqlite_where=sa.text("status = 'erased'"),
                              postgresql_where=sa.text("status = 'erased'"))


def downgrade() -> None:
    with op.batch_alter_table('customers', schema=None) as batch_op:
        batch_op.drop_index('ix_customers_erased')

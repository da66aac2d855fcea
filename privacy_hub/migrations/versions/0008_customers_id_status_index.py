"""a covering index of customers (id, status) for the gate's batches and audiences

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-23 05:35:00
"""

from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('customers', schema=None) as batch_op:
        batch_op.create_index('ix_customers_id_status', ['id', 'status'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('customers', schema=None) as batch_op:
        batch_op.drop_index('ix_customers_id_status')

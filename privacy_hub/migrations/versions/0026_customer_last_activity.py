"""customers.last_active_at and inactivity_notice_at (R-RET-02): inactive customers are
warned, then erased

Revision ID: 0026
Revises: 0025
Create Date: 2026-12-08 09:00:00
"""

import sqlalchemy as sa
from alembic import op

import audit.sql

revision = '0026'
down_revision = '0025'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('customers', schema=None) as batch_op:
        batch_op.add_column(sa.Column('last_active_at', audit.sql.UTCDateTime(timezone=True),
                                      nullable=True))
        batch_op.add_column(sa.Column('inactivity_notice_at',
                                      audit.sql.UTCDateTime(timezone=True), nullable=True))
    # Nothing better is known of customers made before: their last change counts as
    # their last activity (updated_at is never before created_at).
    op.execute("UPDATE customers SET last_active_at = updated_at")
    with op.batch_alter_table('customers', schema=None) as batch_op:
        batch_op.create_index('ix_customers_last_active_at', ['last_active_at'], unique=False)
        batch_op.create_index('ix_customers_inactivity_notice_at', ['inactivity_notice_at'],
                              unique=False,
                              sqlite_where=sa.text("inactivity_notice_at IS NOT NULL"),
                              postgresql_where=sa.text("inactivity_notice_at IS NOT NULL"))


def downgrade() -> None:
    with op.batch_alter_table('customers', schema=None) as batch_op:
        batch_op.drop_index('ix_customers_inactivity_notice_at')
        batch_op.drop_index('ix_customers_last_active_at')
        batch_op.drop_column('inactivity_notice_at')
        batch_op.drop_column('last_active_at')

"""requests: the ground of a rejection and when it was decided (Art. 12(4), 12(5))

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-15 10:00:00
"""

import sqlalchemy as sa
from alembic import op

import audit.sql

revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('requests', schema=None) as batch_op:
        batch_op.add_column(sa.Column('rejection_ground', sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column('rejected_at', audit.sql.UTCDateTime(timezone=True),
                                      nullable=True))
    # Rejections decided before grounds were recorded: "other" (the reason says more), at
    # the request's last change, which was the rejection (nothing moves a rejected request).
    op.execute("UPDATE requests SET rejection_ground = 'other', rejected_at = updated_at "
               "WHERE status = 'rejected'")


def downgrade() -> None:
    with op.batch_alter_table('requests', schema=None) as batch_op:
        batch_op.drop_column('rejected_at')
        batch_op.drop_column('rejection_ground')

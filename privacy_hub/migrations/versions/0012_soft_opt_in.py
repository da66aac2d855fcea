"""soft opt-in (ePrivacy Art. 13(2)): purposes flagged for it, and customer relationships

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-23 10:20:00
"""

import sqlalchemy as sa
from alembic import op

import audit.sql

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('purposes', schema=None) as batch_op:
        batch_op.add_column(sa.Column('soft_opt_in', sa.Boolean(), nullable=False,
                                      server_default=sa.false()))
    op.create_table(
        'customer_relationships',
        sa.Column('customer_id', sa.String(length=36), nullable=False),
        sa.Column('first_purchase_at', audit.sql.UTCDateTime(), nullable=False),
        sa.Column('last_purchase_at', audit.sql.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint('customer_id', name=op.f('pk_customer_relationships')),
    )


def downgrade() -> None:
    op.drop_table('customer_relationships')
    with op.batch_alter_table('purposes', schema=None) as batch_op:
        batch_op.drop_column('soft_opt_in')

"""supplementary statements (Art. 16), sealed under the customer's key

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23 05:35:00
"""

import sqlalchemy as sa
from alembic import op

import audit.sql

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'customer_statements',
        sa.Column('id', sa.String(length=36), nullable=False),
        sa.Column('customer_id', sa.String(length=36), nullable=False),
        sa.Column('fields', sa.String(length=400), nullable=True),
        sa.Column('text_ct', sa.LargeBinary(), nullable=False),
        sa.Column('added_at', audit.sql.UTCDateTime(), nullable=False),
        sa.Column('added_by', sa.String(length=160), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_customer_statements')),
    )
    with op.batch_alter_table('customer_statements', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_customer_statements_customer_id'), ['customer_id'],
                              unique=False)


def downgrade() -> None:
    with op.batch_alter_table('customer_statements', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_customer_statements_customer_id'))
    op.drop_table('customer_statements')

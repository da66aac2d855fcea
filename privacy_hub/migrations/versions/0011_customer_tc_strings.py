"""IAB TCF TC strings (R-SIG-03), sealed under the customer's key

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-23 10:30:00
"""

import sqlalchemy as sa
from alembic import op

import audit.sql

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'customer_tc_strings',
        sa.Column('id', sa.String(length=36), nullable=False),
        sa.Column('customer_id', sa.String(length=36), nullable=False),
        sa.Column('tc_string_ct', sa.LargeBinary(), nullable=False),
        sa.Column('tcf_version', sa.Integer(), nullable=False),
        sa.Column('cmp_id', sa.Integer(), nullable=False),
        sa.Column('cmp_version', sa.Integer(), nullable=False),
        sa.Column('consent_language', sa.String(length=2), nullable=False),
        sa.Column('vendor_list_version', sa.Integer(), nullable=False),
        sa.Column('tcf_policy_version', sa.Integer(), nullable=False),
        sa.Column('tc_created_at', audit.sql.UTCDateTime(), nullable=False),
        sa.Column('tc_updated_at', audit.sql.UTCDateTime(), nullable=False),
        sa.Column('collected_at', audit.sql.UTCDateTime(), nullable=True),
        sa.Column('recorded_at', audit.sql.UTCDateTime(), nullable=False),
        sa.Column('recorded_by', sa.String(length=160), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_customer_tc_strings')),
    )
    with op.batch_alter_table('customer_tc_strings', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_customer_tc_strings_customer_id'), ['customer_id'],
                              unique=False)


def downgrade() -> None:
    with op.batch_alter_table('customer_tc_strings', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_customer_tc_strings_customer_id'))
    op.drop_table('customer_tc_strings')

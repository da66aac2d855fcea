"""cookie banner choices of anonymous visitors, linked to customers later

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07 14:25:00
"""

import sqlalchemy as sa
from alembic import op

import audit.sql

revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'banner_choices',
        sa.Column('id', sa.String(length=36), nullable=False),
        sa.Column('visitor_id', sa.String(length=36), nullable=False),
        sa.Column('categories', sa.Text(), nullable=False),
        sa.Column('notice_version', sa.String(length=64), nullable=True),
        sa.Column('gpc', sa.Boolean(), nullable=False),
        sa.Column('action', sa.String(length=16), nullable=False),
        sa.Column('created_at', audit.sql.UTCDateTime(), nullable=False),
        sa.Column('expires_at', audit.sql.UTCDateTime(), nullable=False),
        sa.Column('customer_id', sa.String(length=36), nullable=True),
        sa.Column('linked_at', audit.sql.UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_banner_choices')),
    )
    with op.batch_alter_table('banner_choices', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_banner_choices_customer_id'), ['customer_id'],
                              unique=False)
        batch_op.create_index(batch_op.f('ix_banner_choices_visitor_id'), ['visitor_id'],
                              unique=False)


def downgrade() -> None:
    with op.batch_alter_table('banner_choices', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_banner_choices_visitor_id'))
        batch_op.drop_index(batch_op.f('ix_banner_choices_customer_id'))
    op.drop_table('banner_choices')

"""portal sign-in links: single-use, hashed, expiring

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07 14:10:00
"""

import sqlalchemy as sa
from alembic import op

import audit.sql

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'portal_sign_in_links',
        sa.Column('token_hash', sa.LargeBinary(length=32), nullable=False),
        sa.Column('customer_id', sa.String(length=36), nullable=False),
        sa.Column('created_at', audit.sql.UTCDateTime(), nullable=False),
        sa.Column('expires_at', audit.sql.UTCDateTime(), nullable=False),
        sa.Column('used_at', audit.sql.UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint('token_hash', name=op.f('pk_portal_sign_in_links')),
    )
    with op.batch_alter_table('portal_sign_in_links', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_portal_sign_in_links_customer_id'), ['customer_id'],
                              unique=False)
        batch_op.create_index(batch_op.f('ix_portal_sign_in_links_expires_at'), ['expires_at'],
                              unique=False)


def downgrade() -> None:
    with op.batch_alter_table('portal_sign_in_links', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_portal_sign_in_links_expires_at'))
        batch_op.drop_index(batch_op.f('ix_portal_sign_in_links_customer_id'))
    op.drop_table('portal_sign_in_links')

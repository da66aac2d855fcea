"""console staff: password, TOTP, recovery codes, lockout

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07 17:05:00
"""

import sqlalchemy as sa
from alembic import op

import audit.sql

revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'staff',
        sa.Column('id', sa.String(length=36), nullable=False),
        sa.Column('email', sa.String(length=320), nullable=False),
        sa.Column('role', sa.String(length=16), nullable=False),
        sa.Column('password_hash', sa.String(length=255), nullable=False),
        sa.Column('totp_secret_ct', sa.LargeBinary(), nullable=False),
        sa.Column('totp_last_step', sa.Integer(), nullable=True),
        sa.Column('totp_confirmed_at', audit.sql.UTCDateTime(), nullable=True),
        sa.Column('recovery_codes', sa.Text(), nullable=False),
        sa.Column('failed_sign_ins', sa.Integer(), nullable=False),
        sa.Column('locked_until', audit.sql.UTCDateTime(), nullable=True),
        sa.Column('created_at', audit.sql.UTCDateTime(), nullable=False),
        sa.Column('last_sign_in_at', audit.sql.UTCDateTime(), nullable=True),
        sa.Column('disabled_at', audit.sql.UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_staff')),
        sa.UniqueConstraint('email', name=op.f('uq_staff_email')),
    )


def downgrade() -> None:
    op.drop_table('staff')

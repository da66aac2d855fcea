"""suppression list (R-ERASE-05): keyed identifier hashes with day and reason, and the
processing flag of customers made with a listed identifier

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-15 10:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0018'
down_revision = '0017'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Only hash, day and reason: no customer id, nothing that links an entry to a person.
    op.create_table(
        'suppression_list',
        sa.Column('identifier_hash', sa.LargeBinary(length=32), nullable=False),
        sa.Column('suppressed_on', sa.Date(), nullable=False),
        sa.Column('reason', sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint('identifier_hash', name=op.f('pk_suppression_list')),
    )
    # Customers made before the list existed were checked against nothing: none is flagged.
    with op.batch_alter_table('processing_flags', schema=None) as batch_op:
        batch_op.add_column(sa.Column('suppressed', sa.Boolean(), nullable=False,
                                      server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table('processing_flags', schema=None) as batch_op:
        batch_op.drop_column('suppressed')
    op.drop_table('suppression_list')

"""purposes: the source purpose of further processing and its compatibility assessment

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-23 09:50:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('purposes', schema=None) as batch_op:
        batch_op.add_column(sa.Column('source_purpose', sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column('compatibility_ref', sa.String(length=500), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('purposes', schema=None) as batch_op:
        batch_op.drop_column('compatibility_ref')
        batch_op.drop_column('source_purpose')

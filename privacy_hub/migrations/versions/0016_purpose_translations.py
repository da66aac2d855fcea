"""purposes: titles and descriptions in other languages (Art. 12(1))

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-14 10:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Existing purposes have no translations yet: the default text is shown everywhere.
    with op.batch_alter_table('purposes', schema=None) as batch_op:
        batch_op.add_column(sa.Column('translations', sa.Text(), nullable=False,
                                      server_default='{}'))


def downgrade() -> None:
    with op.batch_alter_table('purposes', schema=None) as batch_op:
        batch_op.drop_column('translations')

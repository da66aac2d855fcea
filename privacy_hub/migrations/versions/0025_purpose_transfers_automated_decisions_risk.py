"""purposes: third-country transfers, automated decisions, data subject categories, risk
and DPIA reference (Art. 15(1)(h), 15(2), 22, 30(1)(c) and (e), 35); ropa_versions: every
version of the records of processing (Art. 30(1), 5(2))

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-20 10:00:00
"""

import sqlalchemy as sa
from alembic import op

import audit.sql

revision = '0025'
down_revision = '0024'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Existing purposes: no transfer, no automated decision, customers, standard risk.
    with op.batch_alter_table('purposes', schema=None) as batch_op:
        batch_op.add_column(sa.Column('transfers', sa.Text(), nullable=False,
                                      server_default='[]'))
        batch_op.add_column(sa.Column('automated_decisions', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('data_subject_categories', sa.Text(), nullable=False,
                                      server_default='["customers"]'))
        batch_op.add_column(sa.Column('risk', sa.String(length=16), nullable=False,
                                      server_default='standard'))
        batch_op.add_column(sa.Column('dpia_ref', sa.String(length=500), nullable=True))
    # The first version is stored by the first process that opens the hub after the upgrade.
    op.create_table('ropa_versions',
    sa.Column('number', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('record', sa.Text(), nullable=False),
    sa.Column('cause', sa.String(length=500), nullable=False),
    sa.Column('created_at', audit.sql.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('number', name=op.f('pk_ropa_versions'))
    )


def downgrade() -> None:
    op.drop_table('ropa_versions')
    with op.batch_alter_table('purposes', schema=None) as batch_op:
        batch_op.drop_column('dpia_ref')
        batch_op.drop_column('risk')
        batch_op.drop_column('data_subject_categories')
        batch_op.drop_column('automated_decisions')
        batch_op.drop_column('transfers')

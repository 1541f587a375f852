"""Network tags (Neutron's standard-attr-tag on networks; the routed-mode tag `dvrnet:routed`).

Revision ID: 0002
Revises: 0001
"""
import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("networks") as b:
        b.add_column(sa.Column("tags", sa.Text, nullable=False, server_default="[]"))


def downgrade() -> None:
    with op.batch_alter_table("networks") as b:
        b.drop_column("tags")

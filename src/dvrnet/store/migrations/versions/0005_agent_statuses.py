"""agent_statuses: what each host's agent last reported of the FIPs and router gateway ports it
serves (store/statuses.py), and row 2 of `revision`: the generation of those reports.

Revision ID: 0005
Revises: 0004
"""
import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "agent_statuses",
        sa.Column("host", sa.String(255), primary_key=True),
        sa.Column("kind", sa.String(32), primary_key=True),
        sa.Column("resource_id", sa.String(255), primary_key=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("port_id", sa.String(64), nullable=True),
        sa.Column("addresses", sa.Text, nullable=False, server_default=""),
        sa.Column("revision", sa.BigInteger, nullable=False),
        sa.Column("reason", sa.Text, nullable=True),
        sa.Column("reported_at", sa.String(32), nullable=False),
    )
    op.create_index("ix_agent_statuses_resource", "agent_statuses", ["kind", "resource_id"])
    op.get_bind().execute(sa.text("INSERT INTO revision (id, value) VALUES (2, 0)"))


def downgrade() -> None:
    op.get_bind().execute(sa.text("DELETE FROM revision WHERE id = 2"))
    op.drop_index("ix_agent_statuses_resource", "agent_statuses")
    op.drop_table("agent_statuses")

"""revision_stamps: a random stamp per revision, written with the revision (store/changelog.py), so
a cursor can say which write of revision R it was handed at: a database restored from a backup
keeps its database id but not the stamps of the revisions it lost, and writes after the restore
get new ones (docs/feed.md). The current revision gets a stamp here.

Revision ID: 0006
Revises: 0005
"""
import secrets

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    stamps = op.create_table(
        "revision_stamps",
        sa.Column("revision", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("stamp", sa.String(32), nullable=False),
    )
    current = op.get_bind().execute(sa.text("SELECT value FROM revision WHERE id = 1")).scalar_one()
    op.bulk_insert(stamps, [{"revision": int(current), "stamp": secrets.token_hex(8)}])


def downgrade() -> None:
    op.drop_table("revision_stamps")

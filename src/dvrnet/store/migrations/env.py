"""Alembic environment: runs on the connection `dvrnet.store.migrate` hands over (never its own URL)."""
from alembic import context

from dvrnet.store.tables import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, transaction_per_migration=False)
with context.begin_transaction():
    context.run_migrations()

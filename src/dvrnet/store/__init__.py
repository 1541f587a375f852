"""Persistence of the cloud: SQLAlchemy 2 (SQLite by default, PostgreSQL for several servers),
Alembic migrations applied at startup. See `store.py` for how writes are serialised and why an
address is never recorded twice."""
from .rows import Meta
from .store import Change, DatabaseUnavailable, State, Store

__all__ = ["Change", "DatabaseUnavailable", "Meta", "State", "Store"]

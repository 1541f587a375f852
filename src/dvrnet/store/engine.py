"""Engines for the two supported databases, and the write lock each one uses.

- SQLite (default, one server): connections kept for every worker thread (`SQLITE_POOL`: a
  connection opened per read costs more than the read), WAL journal, foreign keys on, the driver's own transaction
  handling off so that we emit `BEGIN` ourselves: `BEGIN IMMEDIATE` for writes (takes the database
  write lock up front, so two writers never both read the old state) and a deferred `BEGIN` for
  reads (a consistent snapshot under WAL). `sqlite://` (in memory) shares one connection.
- PostgreSQL (several servers): `postgresql://` is served by psycopg 3. Writes run READ COMMITTED
  and take `pg_advisory_xact_lock(WRITE_LOCK_KEY)` as their first statement, so every statement
  after it sees all earlier commits; reads run REPEATABLE READ (one snapshot for the whole load).
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import StaticPool

WRITE_LOCK_KEY = 0x64767201   # "dvr\x01"
SQLITE_POOL = 40


def normalize_url(url: str) -> str:
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def is_memory(engine: Engine) -> bool:
    return is_sqlite(engine) and engine.url.database in (None, "", ":memory:")


def make_engine(url: str) -> Engine:
    url = normalize_url(url)
    if url.startswith("sqlite"):
        u = sa.make_url(url)
        memory = u.database in (None, "", ":memory:")
        kw: dict = {"connect_args": {"check_same_thread": False, "timeout": 60}}
        if memory:
            kw["poolclass"] = StaticPool
        else:   # as many as the server's worker threads (anyio's 40): none opened and closed per read
            kw.update(pool_size=SQLITE_POOL, max_overflow=8)
        engine = sa.create_engine(url, **kw)

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn, _rec):
            dbapi_conn.isolation_level = None          # we issue BEGIN ourselves
            cur = dbapi_conn.cursor()
            if not memory:
                cur.execute("PRAGMA journal_mode=WAL")
                cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=60000")
            cur.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Connection) -> None:
            write = conn.get_execution_options().get("dvrnet_write", False)
            conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

        return engine
    return sa.create_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True)


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """A transaction that holds the database-wide write lock from its first statement."""
    if is_sqlite(engine):
        with engine.connect() as c:
            c = c.execution_options(dvrnet_write=True)
            with c.begin():
                yield c
        return
    with engine.connect() as c:
        c = c.execution_options(isolation_level="READ COMMITTED")
        with c.begin():
            c.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": WRITE_LOCK_KEY})
            yield c


@contextmanager
def read_transaction(engine: Engine) -> Iterator[Connection]:
    """A transaction whose reads all see one snapshot."""
    with engine.connect() as c:
        if not is_sqlite(engine):
            c = c.execution_options(isolation_level="REPEATABLE READ")
        with c.begin():
            yield c

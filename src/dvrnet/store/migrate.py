"""Schema migrations: Alembic, run programmatically on startup (`upgrade_to_head`).

The scripts live in `dvrnet/store/migrations/versions/` (0001 is the initial schema). Upgrading
runs inside the write lock, so several servers starting together on one PostgreSQL database
migrate it once.
"""
from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine

from .engine import write_transaction

MIGRATIONS = Path(__file__).parent / "migrations"


def _config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def head() -> str:
    return ScriptDirectory.from_config(_config()).get_current_head()


def current(engine: Engine) -> str | None:
    with engine.connect() as c:
        return MigrationContext.configure(c).get_current_revision()


def upgrade_to_head(engine: Engine) -> None:
    if current(engine) == head():
        return
    cfg = _config()
    with write_transaction(engine) as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")

"""`run(...)`: start the server with uvicorn and block (what `dvrnet server` calls). uvicorn
picks httptools' parser and uvloop's event loop when they are installed (pinned dependencies: less
CPU per request than h11 and asyncio's loop, which matters for a thousand agents long-polling the
delta feed); a venv made before they were added still runs, on h11 and asyncio. The process
settles its heap (`heap.Settler`: one full GC collection, then `gc.freeze`) once writes pause, so
the collector's full passes over a large model do not fall inside a write."""
from __future__ import annotations

import os
from pathlib import Path

import uvicorn

from ..heap import Settler
from .app import create_app


def parse_bind(bind: str) -> tuple[str, int]:
    host, sep, port = bind.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"--bind {bind!r}: expected HOST:PORT, e.g. 127.0.0.1:9696")
    return host.strip("[]") or "127.0.0.1", int(port)


def default_db(state_dir: str) -> str:
    return f"sqlite:///{Path(state_dir).absolute() / 'dvrnet.db'}"


def run(bind: str, db: str | None, auth: str, state_dir: str, tokens: str | None,
        change_log_revisions: int = 10_000) -> None:
    host, port = parse_bind(bind)
    os.makedirs(state_dir, exist_ok=True)
    app = create_app(db or default_db(state_dir), auth=auth, tokens=tokens, change_log_revisions=change_log_revisions)
    settler = Settler()         # full GC collections once writes pause, not inside a write (heap.py)
    app.state.store.add_listener(lambda _revision: settler.touch())
    settler.start()
    uvicorn.run(app, host=host, port=port, log_level="info", timeout_graceful_shutdown=3)   # http/loop "auto": httptools and uvloop

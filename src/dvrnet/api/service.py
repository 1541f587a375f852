"""`Service`: the store plus the Workspace that applies each write.

`write(fn, then)` runs `fn(txn)` inside `Store.write` (under the write lock, on the committed
state) and stores the Workspace's resulting snapshot, with the ChangeSet of what `fn` changed
(`Workspace.take_changes`: the store writes those rows only, and both the snapshot and the change
log are made from it in O(change)); `then(result, after)` builds the answer
inside the same transaction. The Workspace of the last successful write is
kept, keyed by the revision it produced, so the next write does not rebuild it (and its IPAM
indexes) from the whole cloud; it is dropped whenever a write fails (a bulk request may have
applied some operations before one raised, and the database rolled them back) or the revision
moved under it (another server wrote).
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

from starlette.concurrency import run_in_threadpool

from ..model import Cloud
from ..model.cloud import INDEXES
from ..ops import Workspace
from ..store import Change, DatabaseUnavailable, State, Store
from .actions import Txn

T = TypeVar("T")
log = logging.getLogger("dvrnet.api")


def warm_indexes(c: Cloud) -> None:
    """Build CLOUD's lazily built indexes (a change applied to it derives its own from them)."""
    for name in (*(spec.name for spec in INDEXES), "compute_subnets_by_host", "held"):
        getattr(c, name)


class Service:
    def __init__(self, store: Store, reuse_workspace: bool = True):
        self.store = store
        self.reuse_workspace = reuse_workspace
        self._ws: tuple[int, Workspace] | None = None    # guarded by the store's write lock

    def state(self) -> State:
        return self.store.state()

    def heartbeat(self, host: str, request_id: str = "-") -> None:
        """Record that HOST's agent was seen (at most every 10 s); best-effort: during a database
        fault the agent is still served, and the next call records it."""
        try:
            self.store.heartbeat(host)
        except DatabaseUnavailable as e:
            log.warning("request %s: heartbeat of host %s not recorded: %s", request_id, host, e.log_detail)

    async def beat(self, host: str, request_id: str = "-") -> None:
        """`heartbeat` from the event loop: the beat is noted in memory at once; only when the
        batched write is due does it go to a worker thread (once per 10 s, not per request)."""
        _, due = self.store.note_beat(host)
        if due:
            await run_in_threadpool(self._flush_beats, host, request_id)

    def _flush_beats(self, host: str, request_id: str) -> None:
        try:
            self.store.flush_beats()
        except DatabaseUnavailable as e:
            log.warning("request %s: heartbeat of host %s not recorded: %s", request_id, host, e.log_detail)

    def warm(self) -> None:
        """`Store.warm`, with this service's Workspace of the current snapshot (what the first write
        would otherwise build: ~0.6 s of CPU with the change log's tracker at 10,000 FIPs)."""
        def workspace(st: State) -> None:
            if self.reuse_workspace and (self._ws is None or self._ws[0] != st.revision):
                ws = Workspace(st.cloud)
                for c in (st.cloud, ws.snapshot()):     # its first snapshot validates the whole cloud
                    warm_indexes(c)
                self._ws = (st.revision, ws)
        self.store.warm(workspace)

    def write(self, fn: Callable[[Txn], T], then: Callable[[T, State], Any] | None = None) -> tuple[Any, State]:
        """`then(result, after)` (the answer) runs before the commit: see `Store.write`."""
        holder: dict[str, Workspace] = {}

        def change(state: State) -> Change[T]:
            cached = self._ws
            self._ws = None
            if self.reuse_workspace and cached is not None and cached[0] == state.revision:
                ws = cached[1]
            else:
                ws = Workspace(state.cloud)
            ws.take_changes()       # nothing: the Workspace is at the committed state
            txn = Txn(ws, state.cloud)
            result = fn(txn)
            holder["ws"] = ws
            return Change(result, ws.snapshot(), txn.descriptions, ws.take_changes())

        result, after = self.store.write(change, then)
        if self.reuse_workspace and "ws" in holder:
            self._ws = (after.revision, holder["ws"])
        return result, after

"""The change log: what every write changed, for the whole cloud and for each host's view.

Rows of `change_log` (migration 0003): `(revision, host, kind, resource_id, op)` with op
"upsert" or "delete" and kind a `Cloud` collection name:
- `host` NULL: the resource change itself (every resource the write upserted or deleted);
- `host` H: the change of H's *view* (`model.placement.view_keys`) at that revision: a resource
  that entered H's view or changed inside it ("upsert"), or left it ("delete"). Computed at
  write time, inside the write's transaction, by `placement.ViewTracker` from the write's
  ChangeSet (the one placement; O(what the change touches)), so every server sharing the
  database answers "what changed for H since R" by reading H's rows with revision > R (values
  are the current ones: the last op per key decides) — no server needs the old snapshot.
A write that concerns no host's view (a network nobody uses, a description) writes no H rows;
writes that only report agent state (heartbeats, status reports: `statuses.py`) do not go
through `Store.write` at all.

`feed_state` holds the database's identity (a UUID made by the migration: a cursor from another
database is recognised) and `log_floor`: the log is complete for every revision above it. Every
`TRIM_EVERY` writes, rows of revisions at or below `revision - keep` are deleted and the floor
moves there (retention bounded by revisions, `Store(..., change_log_revisions=N)`); a `since`
below the floor gets a resync answer.

On PostgreSQL each write also sends `NOTIFY dvrnet_changes, '<revision>'` (delivered at commit),
which wakes long-polls on every server (`api/feed.py`).
"""
from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ..model import Cloud
from ..model.changeset import ChangeSet, Key, apply, key_of
from ..model.placement import ViewTracker
from . import tables as t

CHANNEL = "dvrnet_changes"
DEFAULT_KEEP = 10_000
TRIM_EVERY = 16


@dataclass(frozen=True)
class FeedState:
    database_id: str
    floor: int


def _rows(rev: int, host: str | None, cs: ChangeSet) -> list[dict]:
    out = [{"revision": rev, "host": host, "kind": k, "resource_id": i, "op": "upsert"}
           for k, i in (key_of(o) for o in cs.upserts)]
    out += [{"revision": rev, "host": host, "kind": k, "resource_id": i, "op": "delete"} for k, i in cs.deletes]
    return out


class ChangeLog:
    """Records each write (`record`, inside the write transaction) and reads the log back."""

    def __init__(self, keep_revisions: int = DEFAULT_KEEP):
        if keep_revisions < 1:
            raise ValueError("change_log_revisions must be at least 1")
        self.keep = keep_revisions
        self.tracker = ViewTracker()        # guarded by the store's write lock

    def record(self, c: Connection, old: Cloud, cs: ChangeSet, rev: int) -> tuple[Cloud, frozenset[str]]:
        """Log the write that turns OLD into revision REV by CS; returns the new snapshot (made by
        `changeset.apply`, sharing OLD's objects and indexes) and the hosts whose view changed."""
        new, touched = apply(old, cs, validate=False)
        if self.tracker.cloud is not old:       # first write, or another server wrote: catch up
            self.tracker.advance(old)
        deltas = self.tracker.advance(new, touched)
        rows = _rows(rev, None, cs)
        for h in sorted(deltas):
            rows += _rows(rev, h, deltas[h])
        if rows:
            c.execute(t.change_log.insert(), rows)
        if c.dialect.name == "postgresql":
            c.execute(sa.select(sa.func.pg_notify(CHANNEL, str(rev))))
        if rev % TRIM_EVERY == 0:
            self._trim(c, rev)
        return new, frozenset(deltas)

    def _trim(self, c: Connection, rev: int) -> None:
        floor = rev - self.keep
        if floor <= read_state(c).floor:
            return
        c.execute(t.change_log.delete().where(t.change_log.c.revision <= floor))
        c.execute(t.feed_state.update().where(t.feed_state.c.id == 1).values(log_floor=floor))


# Built once: every feed answer runs these (building a statement costs more than running it).
_STATE = sa.select(t.feed_state.c.database_id, t.feed_state.c.log_floor).where(t.feed_state.c.id == 1)
_HOST_OPS = (sa.select(t.change_log.c.kind, t.change_log.c.resource_id, t.change_log.c.op)
             .where(t.change_log.c.host == sa.bindparam("host"), t.change_log.c.revision > sa.bindparam("since"))
             .order_by(t.change_log.c.revision, t.change_log.c.id))


def read_state(c: Connection) -> FeedState:
    r = c.execute(_STATE).one()
    return FeedState(r.database_id, int(r.log_floor))


def host_ops(c: Connection, host: str, since: int) -> dict[Key, str]:
    """The last op per key of HOST's view rows with revision > SINCE."""
    out: dict[Key, str] = {}
    for kind, rid, op in c.execute(_HOST_OPS, {"host": host, "since": since}):
        out[(kind, rid)] = op
    return out


def hosts_between(c: Connection, after: int, upto: int) -> dict[str, int]:
    """Hosts whose view changed at a revision in (AFTER, UPTO], with the last such revision."""
    cl = t.change_log
    q = (sa.select(cl.c.host, sa.func.max(cl.c.revision)).where(
        cl.c.host.is_not(None), cl.c.revision > after, cl.c.revision <= upto).group_by(cl.c.host))
    return {h: int(r) for h, r in c.execute(q)}

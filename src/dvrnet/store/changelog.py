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

`revision_stamps` holds a random stamp per revision (migration 0006), written by the write that
made the revision, with the stamp of the revision before it read in the same transaction
(`Written.prev_stamp`): a cursor carries the stamp of its revision, so a cursor handed out by
another timeline of the same database (a restored backup: same database id, the lost revisions'
numbers given to new writes) is recognised, and a server can prove that the revisions between a
cursor and the database's head are exactly its own writes (the chain of stamps; `api/recent.py`).

`feed_state` holds the database's identity (a UUID made by the migration: a cursor from another
database is recognised) and `log_floor`: the log is complete for every revision above it. Every
`TRIM_EVERY` writes, rows of revisions at or below `revision - keep` are deleted and the floor
moves there (stamps below it are deleted too; retention bounded by revisions, `Store(..., change_log_revisions=N)`); a `since`
below the floor gets a resync answer.

On PostgreSQL each write also sends `NOTIFY dvrnet_changes, '<revision>'` (delivered at commit),
which wakes long-polls on every server (`api/feed.py`).
"""
from __future__ import annotations

import secrets
from collections.abc import Mapping
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


@dataclass(frozen=True)
class Head:
    """The database's head, read in one statement: its revision and that revision's stamp (None:
    written before stamps existed), its identity and the log's floor."""
    revision: int
    stamp: str | None
    database_id: str
    floor: int


@dataclass(frozen=True)
class Written:
    """What `ChangeLog.record` wrote for one revision: its stamp, the stamp of the revision before
    it (read in the write's transaction; None if that one had none) and the change of every host
    view it concerned (exactly the host rows of the log)."""
    revision: int
    stamp: str
    prev_stamp: str | None
    deltas: Mapping[str, ChangeSet]


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

    def record(self, c: Connection, old: Cloud, cs: ChangeSet, rev: int, prev: str | None) -> tuple[Cloud, Written]:
        """Log the write that turns OLD into revision REV by CS; returns the new snapshot (made by
        `changeset.apply`, sharing OLD's objects and indexes) and what was written (the hosts
        whose view changed are its `deltas`' keys). PREV is the stamp of revision REV - 1 as the
        caller read it in this transaction (the write lock held: it cannot change before the
        commit)."""
        new, touched = apply(old, cs, validate=False)
        if self.tracker.cloud is not old:       # first write, or another server wrote: catch up
            self.tracker.advance(old)
        deltas = self.tracker.advance(new, touched)
        rows = _rows(rev, None, cs)
        for h in sorted(deltas):
            rows += _rows(rev, h, deltas[h])
        if rows:
            c.execute(t.change_log.insert(), rows)
        stamp = secrets.token_hex(8)
        c.execute(t.revision_stamps.insert(), {"revision": rev, "stamp": stamp})
        if c.dialect.name == "postgresql":
            c.execute(sa.select(sa.func.pg_notify(CHANNEL, str(rev))))
        if rev % TRIM_EVERY == 0:
            self._trim(c, rev)
        return new, Written(rev, stamp, prev, deltas)

    def _trim(self, c: Connection, rev: int) -> None:
        floor = rev - self.keep
        if floor <= read_state(c).floor:
            return
        c.execute(t.change_log.delete().where(t.change_log.c.revision <= floor))
        c.execute(t.revision_stamps.delete().where(t.revision_stamps.c.revision < floor))
        c.execute(t.feed_state.update().where(t.feed_state.c.id == 1).values(log_floor=floor))


# Built once: every feed answer runs these (building a statement costs more than running it).
_STATE = sa.select(t.feed_state.c.database_id, t.feed_state.c.log_floor).where(t.feed_state.c.id == 1)
_HOST_OPS = (sa.select(t.change_log.c.kind, t.change_log.c.resource_id, t.change_log.c.op)
             .where(t.change_log.c.host == sa.bindparam("host"), t.change_log.c.revision > sa.bindparam("since"))
             .order_by(t.change_log.c.revision, t.change_log.c.id))


_rv, _st, _fs = t.revision, t.revision_stamps, t.feed_state
_HEAD = (sa.select(_rv.c.value, _st.c.stamp, _fs.c.database_id, _fs.c.log_floor)
         .select_from(_rv.outerjoin(_st, _st.c.revision == _rv.c.value).join(_fs, _fs.c.id == 1))
         .where(_rv.c.id == 1))
_STAMP = sa.select(_st.c.stamp).where(_st.c.revision == sa.bindparam("rev"))


def read_head(c: Connection) -> Head:
    r = c.execute(_HEAD).one()
    return Head(int(r.value), r.stamp, r.database_id, int(r.log_floor))


def stamp_of(c: Connection, rev: int) -> str | None:
    """The stamp of revision REV (None: none kept, or written before stamps existed)."""
    return c.execute(_STAMP, {"rev": rev}).scalar_one_or_none()


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

"""This server's own recent writes, kept to answer the delta feed without reading the database.

A write that concerns every host (an external subnet added) wakes every host's long-poll at once;
answering each from the change log costs a worker thread and three SQL statements per host, and
each host's next long-poll the same again. `Recent` keeps, for the last `KEEP` revisions this
server committed, what the change log recorded (`store.changelog.Written`: the revision's stamp,
the stamp of the revision before it, the change of every host view it concerned) and the state
it committed; `answer(host, cursor, head)` builds the answer from them.

Invariants:
- an answer is given only when it is provably the database's own answer at HEAD (a head read,
  `Store.head`, that started after the request came or was woken: `Feed.head`): the cursor is of
  this database, its revision is within the log (floor <= since <= head), HEAD's revision is an
  entry with HEAD's stamp, and every revision from the cursor's up to HEAD's is an entry whose
  `prev_stamp` is the stamp of the one before it, the first one's the cursor's stamp. Each
  `prev_stamp` was read inside its write's transaction (the database write lock held), so the
  database's revisions (cursor, head] are exactly these writes, on the cursor's timeline, and its
  change-log rows for the host are exactly these ChangeSets (the rows were made from them). The
  values come from the state this server committed at HEAD's revision, as the database path
  takes them from the state at that revision. Anything else (another server's or another
  process's write in between, a cursor without a stamp, a restart that lost the entries, a
  revision number of another timeline): None, and the caller reads the database;
- the answer's bytes are the database path's (`changes.encode_body` of the same dict); the part
  after the head (`upserts`, `deletes`) is encoded once per distinct (revision, stamp, ops) and shared by
  every host that gets it (an external subnet added: every host gets the same bytes);
- `record` runs in the writing thread before the write's listeners wake anybody, so a host woken
  by this server's write finds its entry;
- `parks(cursor, latest)` says that a long-poll with CURSOR may wait without reading the head
  (`api/changes.py`): CURSOR is of the database the last read of it named, at this server's newest
  entry (its revision and stamp), and no revision above it has been heard of (LATEST, `Feed.latest`:
  this server's own writes, and other servers' as the NOTIFY listener or the poller reports them).
  Whatever commits after it then reaches the waiter as news, as it reaches any waiter (`Feed`), and
  is answered by `woken` or, failing that, as any other request. The one case it does not see at
  once is a database restored under a running server: that cursor is answered (with a snapshot)
  when the wait ends, as is a long-poll parked before the restore;
- `woken(host, cursor, latest)` answers a long-poll woken by news, without a head read: the same
  proof as `answer`, with this server's newest entry standing for the head, and only while nothing
  newer has been heard of (LATEST). It is for long-polls that waited from the newest revision heard
  of: parked ones (`parks`: the cursor was at it), and ones whose head read before waiting was at
  it. The news that woke them is then a revision numbered above every one heard of before, and
  the newest entry is this server's write of it or after it, whose stamp chain back to the cursor
  holds only if the cursor is on the database's timeline (after a restore it does only when the
  cursor's revision survived it). That entry's revision was committed with its stamp (the write
  lock held), so its answer is the database's answer at that revision: the one a head read would
  have given, or, if another server has committed since, an older but true one, whose cursor the
  next long-poll takes on (and is woken by what came after it). The cursor must be within the
  change log there: its floor is at most that revision minus the log's `keep` (`ChangeLog._trim`).
  `Feed.latest` only grows, so after a restore to lower revision numbers this path is off until
  they pass the old ones, and a long-poll that timed out always reads the head.
"""
from __future__ import annotations

import json
import threading
from dataclasses import dataclass

from ..model.changeset import Key, key_of
from ..store import State
from ..store.changelog import Head, Written
from .changes import WIRE_VERSION, Answer, Cursor, cursor_text, delta_parts

KEEP = 128              # revisions kept (a follower more than this far behind reads the database)
FRAGMENTS = 512         # encoded (revision, ops) parts kept


@dataclass(frozen=True)
class _Entry:
    written: Written
    state: State


class Recent:
    def __init__(self, keep: int = KEEP, log_keep: int | None = None):
        self.keep = keep
        self.log_keep = log_keep        # the change log's retention (None: `woken` never answers)
        self._lock = threading.Lock()
        self._entries: dict[int, _Entry] = {}
        self._fragments: dict[tuple, bytes] = {}
        self.served = 0                 # answers given from memory (tests, benchmarks)
        self.parked = 0                 # long-polls that waited without a head read (tests, benchmarks)
        self._database: str | None = None   # the database id the last read of the database named
        self._newest: int | None = None     # the newest entry's revision (record keeps none above it)

    def record(self, written: Written, state: State) -> None:
        """(A store commit listener.) Keep the write that made STATE."""
        rev = written.revision
        with self._lock:
            for k in [k for k in self._entries if k >= rev or k <= rev - self.keep]:
                del self._entries[k]    # >= rev: revisions of a timeline the database left (a restore)
            self._entries[rev] = _Entry(written, state)
            self._newest = rev

    def saw_database(self, database_id: str) -> None:
        """Note the database id a read of the database named (a head read, an answer from it)."""
        self._database = database_id

    def parks(self, host: str, cursor: Cursor, latest: int) -> bool:
        """May a long-poll for HOST with CURSOR wait at once, without a head read (see the module
        docstring)?"""
        if cursor.stamp is None or cursor.revision != latest or cursor.database != self._database:
            return False
        with self._lock:
            e = self._entries.get(cursor.revision)
            newest = self._newest
        if e is None or newest != cursor.revision or e.written.stamp != cursor.stamp or \
                host not in e.state.cloud.hosts:
            return False
        self.parked += 1
        return True

    def woken(self, host: str, cursor: Cursor, latest: int) -> Answer | None:
        """The answer to a long-poll woken by news, from memory without a head read, or None (see
        the module docstring)."""
        db = self._database
        if self.log_keep is None or db is None or cursor.database != db:
            return None
        with self._lock:
            newest = self._newest
            e = self._entries.get(newest) if newest is not None else None
        if e is None or newest != latest:
            return None
        return self.answer(host, cursor, Head(e.written.revision, e.written.stamp, db,
                                              max(0, e.written.revision - self.log_keep)))

    def answer(self, host: str, cursor: Cursor, head: Head) -> Answer | None:
        self.saw_database(head.database_id)
        since = cursor.revision
        if cursor.stamp is None or head.stamp is None or cursor.database != head.database_id or \
                not head.floor <= since <= head.revision:
            return None
        with self._lock:
            top = self._entries.get(head.revision)
            chain: list[Written] = []
            expect: str | None = head.stamp
            k = head.revision
            while k > since:
                e = self._entries.get(k)
                if e is None or e.written.stamp != expect:
                    return None
                chain.append(e.written)
                expect = e.written.prev_stamp
                k -= 1
        if top is None or top.written.stamp != head.stamp or expect != cursor.stamp:
            return None
        cloud = top.state.cloud
        if host not in cloud.hosts:
            return None                 # the database path answers 404
        ops: dict[Key, str] = {}
        for w in reversed(chain):       # oldest first: the last op per key wins, as in the log
            cs = w.deltas.get(host)
            if cs is not None:
                for o in cs.upserts:
                    ops[key_of(o)] = "upsert"
                for d in cs.deletes:
                    ops[d] = "delete"
        fkey = (head.revision, head.stamp, tuple(sorted(ops.items())))   # the stamp: a restore reuses numbers
        frag = self._fragments.get(fkey)
        if frag is None:
            parts = delta_parts(ops, cloud)
            if parts is None:
                return None
            frag = _dumps({"upserts": parts[0], "deletes": parts[1]})[1:-1]
            if len(self._fragments) >= FRAGMENTS:
                self._fragments.clear()
            self._fragments[fkey] = frag
        top_head = {"version": WIRE_VERSION, "host": host, "database": head.database_id, "revision": head.revision,
                    "cursor": cursor_text(head.database_id, head.revision, head.stamp), "resync": False}
        self.served += 1
        return Answer(_dumps(top_head)[:-1] + b"," + frag + b"}", head.revision, not ops)


def _dumps(o) -> bytes:
    return json.dumps(o, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()

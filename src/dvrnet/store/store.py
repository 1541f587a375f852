"""`Store`: the persistent cloud. Reads return a cached `State`; writes apply one change atomically.

A write (`Store.write(fn)`):
1. takes the process-wide write lock (threads of one server queue here instead of spinning on
   the database's busy handler), then a database transaction holding the database write lock
   (`engine.write_transaction`: SQLite `BEGIN IMMEDIATE`, PostgreSQL `pg_advisory_xact_lock`);
2. reads the global revision and reuses the cached `State` when it matches, else reloads every
   table inside that same transaction (another server wrote in between);
3. calls `fn(state)`, which returns a `Change` (the new Cloud, computed by the caller, and any
   descriptions). If `fn` raises, the transaction rolls back and nothing is written;
4. takes the write's ChangeSet (the Workspace's, from its undo log: `Change.changeset`; only a
   caller without one gets a full comparison of old and new Cloud) and writes only the rows it
   changed: allocation rows out, deleted resources (children first), inserts/updates (parents
   first), allocation rows in; so a write costs O(change), not O(cloud) (the bookkeeping maps,
   `State.meta` and `host_created`, are persistent `immutables.Map`s, not copied per write);
5. records the write in the change log (`changelog.py`: the ChangeSet of the resources changed
   and, from the one placement, the change of every host view it concerns), bumps the global
   revision by one, calls `then(result, new_state)` if given (what the caller answers: if it
   raises, the transaction rolls back too, so no request commits and then fails), and commits;
   then updates the cache (the new snapshot is `changeset.apply`'s, sharing the old one's objects
   and indexes) and tells listeners: `add_commit_listener(cb(what the change log wrote: stamps and
   per-host deltas, new state))` first (api/recent.py), then `add_listener(cb(revision))` and
   `add_change_listener(cb(revision, hosts whose view changed))`.

Why addresses are never handed out twice:
- all writers are serialised by the database lock, and each computes its change from the state
  committed just before it (step 2), so IPAM never sees a stale set of allocations;
- `ip_allocations` has UNIQUE (network_id, ip_address); a duplicate that slipped past the lock
  (it cannot, but a bug or a hand edit could) fails the commit with `IpAddressAlreadyAllocated`
  (409) instead of being stored.

Database faults (a file made read-only, a full disk, PostgreSQL gone or restarted): every pooled
connection is dropped (one opened while SQLite's file was read-only stays read-only for good) and
the read, or the write if it had not reached its commit, is tried once more on a new connection;
if that fails too it is `DatabaseUnavailable` (503, `Retry-After: 3`). A write whose commit failed
is never retried (it may have been applied); the next read reloads whatever the database holds.
So a fault lasts as long as the database's, and heals without a restart.

Reads (`Store.state()`) take no lock: one cheap `SELECT` of the revision and its stamp inside a
snapshot transaction, and a full reload in that same snapshot only when either is not the cached
state's (the stamp: a database restored under a running server makes its lost revision numbers
again, and the cache of the lost timeline is not taken for them). The agents' status
reports (`statuses.py`) ride along: `State.statuses` is read in the same snapshot, reloaded only
when their generation moved; `Store.report(host, ...)` writes one report in a transaction of its
own (no revision, no change log, no listener: nothing is woken by it).

Measured on this 2-core machine (SQLite file): a cached write of one FIP through `Service.write`
costs 1-2.5 ms of CPU whatever the cloud's size (100 to 10,000 FIPs, `python -m
dvrnet.bench.model`; it was 166 ms at 10,000 when every write compared and validated the whole
cloud); a FIP created over HTTP ~9 ms sequentially; 50 parallel creations over HTTP (clients in the same
process) ~2-4 s on SQLite and on PostgreSQL with two servers (tests/api/test_concurrency.py).
"""
from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

import immutables
import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError, IntegrityError

from ..model import Cloud, FixedIP, Host
from ..model.changeset import ChangeSet, Resource, apply, changeset_between, key_of
from ..model.changeset import Key as ResourceKey
from ..model.errors import DvrnetError, IpAddressAlreadyAllocated
from . import changelog, statuses
from . import tables as t
from .engine import is_memory, make_engine, read_transaction, write_transaction
from .migrate import upgrade_to_head
from .rows import KINDS, TABLES, Meta, allocation_rows, from_row, host_from_row, meta_from_row, to_row

T = TypeVar("T")
# built once: the statement of every read (its construction costs as much as its execution)
_REVISIONS = (sa.select(t.revision.c.id, t.revision.c.value, t.revision_stamps.c.stamp)
              .select_from(t.revision.outerjoin(t.revision_stamps, sa.and_(
                  t.revision.c.id == 1, t.revision_stamps.c.revision == t.revision.c.value)))
              .where(t.revision.c.id.in_((1, statuses.GENERATION_ROW))))
Key = tuple[str, str]     # (collection, id)
RETRY_AFTER = 3           # seconds a client is told to wait after a database fault
# Faults of the database itself (not of the request): connection lost or refused, file read-only,
# disk errors, pool exhausted. IntegrityError is a DBAPIError too, and is handled before these.
DB_FAULTS = (DBAPIError, sa.exc.TimeoutError, sa.exc.DisconnectionError)


_REVISION = sa.select(t.revision.c.value).where(t.revision.c.id == 1)     # built once: every read runs it


class DatabaseUnavailable(DvrnetError):
    """503: the database cannot be read or written now; `Retry-After` says when to try again."""
    type = "ServiceUnavailable"
    status = 503
    retry_after = RETRY_AFTER

    def __init__(self, verb: str, err: BaseException):
        super().__init__(f"The database cannot be {verb} at the moment; retry in {RETRY_AFTER} seconds.")
        orig = getattr(err, "orig", None) or err
        self.log_detail = f"{self.message} ({type(orig).__name__}: {orig})"


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class State:
    """A committed cloud plus the bookkeeping the API shows (timestamps, revision_number)."""
    cloud: Cloud
    meta: Mapping[Key, Meta]
    host_created: Mapping[str, str]
    statuses: statuses.Statuses = statuses.NO_STATUSES     # the agents' reports, read with the state

    @property
    def revision(self) -> int:
        return self.cloud.revision

    def meta_of(self, kind: str, id_: str) -> Meta:
        m = self.meta.get((kind, id_))
        return m if m is not None else Meta("", "", 0, "")


@dataclass
class Change(Generic[T]):
    """What a write function returns: its result, the new Cloud, descriptions to set, and the
    ChangeSet that turns the state it was given into that Cloud (None: the store compares every
    collection to find it, O(n))."""
    result: T
    cloud: Cloud
    descriptions: dict[Key, str] = field(default_factory=dict)
    changeset: ChangeSet | None = None


@dataclass(frozen=True)
class HostChanges:
    """What `Store.host_changes` read in one snapshot: the state, the feed's identity and floor,
    the stamp of the state's revision, the stamp the database holds for the asked revision, and
    the last op per key of the host's view since the asked revision (None: no revision asked, or
    that revision is not covered by the log: below its floor, or ahead of the database)."""
    state: State
    feed: changelog.FeedState
    ops: dict[ResourceKey, str] | None
    stamp: str | None = None
    since_stamp: str | None = None


class Store:
    verify_changesets = False     # tests: check each write's ChangeSet against its snapshot (O(n))

    def __init__(self, url: str, migrate: bool = True, change_log_revisions: int = changelog.DEFAULT_KEEP):
        self.url = url
        self.changelog = changelog.ChangeLog(change_log_revisions)
        self._change_listeners: list[Callable[[int, frozenset[str]], None]] = []
        self._commit_listeners: list[Callable[[changelog.Written, State], None]] = []
        self.engine = make_engine(url)
        self._write_lock = threading.Lock()
        self._memory = is_memory(self.engine)
        self._cache_lock = threading.Lock()
        self._held: tuple[State, str | None] | None = None    # the cached state and its revision's stamp
        self._statuses = statuses.NO_STATUSES
        self._listeners: list[Callable[[int], None]] = []
        self._beats: dict[str, float] = {}            # host -> monotonic time of its last beat
        self._pending_beats: dict[str, str] = {}      # host -> timestamp not yet written
        self._beats_flushed = -1e9
        self._beat_lock = threading.Lock()
        if migrate:
            upgrade_to_head(self.engine)

    def close(self) -> None:
        self.engine.dispose()

    # ---- listeners -------------------------------------------------------------------
    def add_listener(self, cb: Callable[[int], None]) -> None:
        self._listeners.append(cb)

    def remove_listener(self, cb: Callable[[int], None]) -> None:
        if cb in self._listeners:
            self._listeners.remove(cb)

    def add_change_listener(self, cb: Callable[[int, frozenset[str]], None]) -> None:
        """CB(revision, hosts whose view the write changed), after each commit of this process."""
        self._change_listeners.append(cb)

    def add_commit_listener(self, cb: Callable[[changelog.Written, State], None]) -> None:
        """CB(what the change log recorded, the new state), after each commit of this process and
        before the listeners above are told (in the writing thread)."""
        self._commit_listeners.append(cb)

    def remove_change_listener(self, cb: Callable[[int, frozenset[str]], None]) -> None:
        if cb in self._change_listeners:
            self._change_listeners.remove(cb)

    # ---- reads -----------------------------------------------------------------------
    def current_revision(self) -> int:
        return self._read(self._revision)

    def state(self) -> State:
        def load(c: Connection) -> State:
            rev, gen, stamp = self._revisions(c)       # one SELECT: the cloud's, its stamp, the reports'
            st = self._cached(rev, stamp) or self._load(c, rev)
            return self._with_statuses(c, st, gen), stamp
        return self._remember(*self._read(load))

    def statuses(self) -> statuses.Statuses:
        return self._read(self._current_statuses)

    def warm(self, then: Callable[[State], None] | None = None) -> None:
        """Build now what the first write would build (the snapshot, the change log's tracker at
        it) and run THEN(state) under the write lock (the Service's Workspace), so the first change
        after a start costs what any other does. Skipped when a write came first (it built them)."""
        st = self.state()
        with self._write_lock:
            if self._state is None or self._state.cloud is not st.cloud:
                return          # a write came first
            if self.changelog.tracker.cloud is None:
                self.changelog.tracker.advance(st.cloud)
            if then is not None:
                then(st)

    def report(self, host: str, upserts: list[statuses.Reported], removed: list[tuple[str, str]]) -> statuses.Statuses:
        """Store one status report of HOST's agent (statuses.write_report): its own transaction,
        no revision, no change log, no listener. Returns the reports after it: the cached ones
        with this report applied when they were current (`statuses.applied`: a report of one FIP
        does not read back every row of the table — 10,000 rows took ~100-200 ms, under the write
        lock every FIP write waits on), else read in full."""
        ts = now()
        try:
            with self._write_lock, write_transaction(self.engine) as c:
                gen = statuses.write_report(c, host, upserts, removed, ts)
                cached = self._statuses
                if cached.generation == gen - 1:        # the cache was current: apply this report to it
                    out = statuses.applied(cached, host, upserts, removed, ts, gen)
                    with self._cache_lock:
                        if self._statuses.generation < gen:
                            self._statuses = out
                else:
                    out = self._current_statuses(c)
        except DB_FAULTS as e:
            self._statuses = statuses.NO_STATUSES     # it may hold what did not commit
            self._discard_connections()
            raise DatabaseUnavailable("written", e) from None
        return out

    def _current_statuses(self, c: Connection, gen: int | None = None) -> statuses.Statuses:
        gen = statuses.generation(c) if gen is None else gen
        cached = self._statuses
        if cached.generation != gen:
            cached = statuses.load(c, gen)
            with self._cache_lock:
                if self._statuses.generation < gen:
                    self._statuses = cached
        return cached

    def _with_statuses(self, c: Connection, st: State, gen: int | None = None) -> State:
        stat = self._current_statuses(c, gen)
        return st if st.statuses is stat else dataclasses.replace(st, statuses=stat)

    def feed_state(self) -> changelog.FeedState:
        return self._read(changelog.read_state)

    def head(self) -> changelog.Head:
        """The database's revision, its stamp, identity and log floor: one SELECT."""
        return self._read(changelog.read_head)

    def host_changes(self, host: str, since: int | None) -> HostChanges:
        """The state and HOST's view changes after revision SINCE (None: the state alone), read in
        one snapshot."""
        def read(c: Connection) -> HostChanges:
            h = changelog.read_head(c)
            rev, fs = h.revision, changelog.FeedState(h.database_id, h.floor)
            st = self._cached(rev, h.stamp) or self._load(c, rev)
            if since is None or not fs.floor <= since <= rev:
                return HostChanges(st, fs, None, h.stamp)
            return HostChanges(st, fs, changelog.host_ops(c, host, since), h.stamp, changelog.stamp_of(c, since))
        out = self._read(read)
        kept = self._remember(out.state, out.stamp)
        return out if kept is out.state else dataclasses.replace(out, state=kept)

    def concerned_hosts(self, after: int, upto: int) -> dict[str, int]:
        """Hosts whose view changed at a revision in (AFTER, UPTO], with the last such revision."""
        return self._read(lambda c: changelog.hosts_between(c, after, upto))

    def heartbeats(self) -> dict[str, str | None]:
        """Every host's last heartbeat: the database's, or this server's newer one not yet written."""
        got: dict[str, str | None] = self._read(lambda c: {
            r.name: r.heartbeat_at for r in c.execute(sa.select(t.hosts.c.name, t.hosts.c.heartbeat_at))})
        with self._beat_lock:
            for h, v in self._pending_beats.items():
                if h in got and (got[h] or "") < v:
                    got[h] = v
        return got

    def heartbeat(self, host: str, min_interval: float = 10.0) -> str | None:
        """Record that `host`'s agent was seen; at most once per `min_interval` seconds per host.
        Beats are batched: each is kept in memory and every beat not yet written goes to the
        database in one transaction, at most every `min_interval` seconds (0: now), so a thousand
        hosts following the feed cost one write per 10 s, not one per host (`heartbeats()` shows
        the unwritten ones too). Returns the timestamp recorded, or None when it was too soon."""
        ts, due = self.note_beat(host, min_interval)
        if due:
            self.flush_beats(min_interval)
        return ts

    def note_beat(self, host: str, min_interval: float = 10.0) -> tuple[str | None, bool]:
        """The in-memory half of `heartbeat` (no database, no waiting: the event loop may call
        it): (the timestamp recorded or None, whether a `flush_beats` is due)."""
        import time
        mono = time.monotonic()
        with self._beat_lock:
            last = self._beats.get(host, 0.0)
            if mono - last < min_interval:
                return None, False
            ts = now()
            self._beats[host] = mono
            self._pending_beats[host] = ts
            return ts, mono - self._beats_flushed >= min_interval

    def flush_beats(self, min_interval: float = 10.0) -> None:
        """Write every beat not yet written, in one transaction (unless another flush did it less
        than `min_interval` seconds ago); on a database fault they stay pending for the next one."""
        import time
        mono = time.monotonic()
        with self._beat_lock:
            if mono - self._beats_flushed < min_interval or not self._pending_beats:
                return
            pending, self._pending_beats = self._pending_beats, {}
            flushed, self._beats_flushed = self._beats_flushed, mono
        try:
            with self._write_lock, write_transaction(self.engine) as c:
                c.execute(t.hosts.update().where(t.hosts.c.name == sa.bindparam("b_name"))
                          .values(heartbeat_at=sa.bindparam("b_at")),
                          [{"b_name": h, "b_at": v} for h, v in sorted(pending.items())])
        except DB_FAULTS as e:
            with self._beat_lock:             # not written: the next beat tries again
                for h, v in pending.items():
                    self._pending_beats.setdefault(h, v)
                    self._beats.pop(h, None)
                self._beats_flushed = flushed
            self._discard_connections()
            raise DatabaseUnavailable("written", e) from None

    # ---- writes ----------------------------------------------------------------------
    def write(self, fn: Callable[[State], Change[T]],
              then: Callable[[T, State], Any] | None = None) -> tuple[Any, State]:
        """Apply `fn`'s change; returns (`then(result, after)` or the result, the new State).
        `then` runs inside the transaction, after the rows are written and before the commit: if
        it raises (e.g. rendering the answer fails), nothing is committed."""
        with self._write_lock:
            for attempt in (1, 2):
                committing = False
                try:
                    with write_transaction(self.engine) as c:
                        rev, gen, stamp = self._revisions(c)
                        before = self._cached(rev, stamp) or self._load(c, rev)
                        change = fn(before)
                        after, written = self._apply(c, before, change, rev + 1, stamp)
                        # the reports' generation read above holds for the whole transaction: a
                        # report takes the same database-wide write lock (write_transaction)
                        after = self._with_statuses(c, after, gen)
                        result = change.result if then is None else then(change.result, after)
                        committing = True       # what fails after this is the commit itself
                    break
                except IntegrityError as e:
                    raise IpAddressAlreadyAllocated(
                        f"The database refused the change (another request holds one of its addresses "
                        f"or ids): {e.orig}") from None
                except DB_FAULTS as e:
                    self._discard_connections()
                    if attempt == 1 and not committing:
                        continue    # nothing was committed: once more, on a new connection
                    raise DatabaseUnavailable("written", e) from None
            self._remember(after, written.stamp)
        for wcb in list(self._commit_listeners):
            wcb(written, after)
        for cb in list(self._listeners):
            cb(after.revision)
        hosts = frozenset(written.deltas)
        for ccb in list(self._change_listeners):
            ccb(after.revision, hosts)
        return result, after

    # ---- internals -------------------------------------------------------------------
    def _read(self, fn: Callable[[Connection], Any]) -> Any:
        """`fn` in a read transaction; a database fault is retried once on a new connection, then
        is `DatabaseUnavailable`."""
        for attempt in (1, 2):
            try:
                with self._reading() as c:
                    return fn(c)
            except DB_FAULTS as e:
                self._discard_connections()
                if attempt == 2:
                    raise DatabaseUnavailable("read", e) from None
        raise AssertionError("unreachable")

    def _discard_connections(self) -> None:
        """Drop every pooled connection after a fault: one opened while the database file was
        read-only stays read-only (SQLite), one the server closed is dead (PostgreSQL). An
        in-memory database lives in its one connection, which is kept."""
        if not self._memory:
            self.engine.dispose()

    def _reading(self):
        if self._memory:     # one shared connection: serialise everything
            return _locked(self._write_lock, read_transaction(self.engine))
        return read_transaction(self.engine)

    @property
    def _state(self) -> State | None:
        held = self._held
        return held[0] if held is not None else None

    def _cached(self, rev: int, stamp: str | None) -> State | None:
        """The cached state if it is the database's revision REV: same number and same stamp (a
        database restored from a backup makes its lost revisions' numbers again, with other
        stamps: a cache of the old timeline is not taken for them)."""
        held = self._held
        if held is not None and held[0].revision == rev and held[1] == stamp:
            return held[0]
        return None

    def _remember(self, st: State, stamp: str | None) -> State:
        """Keep ST (of the revision with STAMP) as the newest state and return what is kept: for
        the revision already held, the held cloud (two readers that loaded the same revision at
        once keep one cloud, so the indexes and the change log's tracker built on it are not
        built again for the other). The same number with another stamp (a restore) replaces it."""
        with self._cache_lock:
            held = self._held
            cur = held[0] if held is not None else None
            same = cur is not None and held is not None and cur.revision == st.revision and held[1] == stamp
            if same and cur is not None and cur.cloud is not st.cloud:
                st = dataclasses.replace(st, cloud=cur.cloud)
            if cur is None or cur.revision <= st.revision:
                self._held = (st, stamp)
            return st

    @staticmethod
    def _revisions(c: Connection) -> tuple[int, int, str | None]:
        """(the cloud's revision, the status reports' generation, the revision's stamp), in one SELECT."""
        rows = {r[0]: (r[1], r[2]) for r in c.execute(_REVISIONS)}
        return int(rows[1][0]), int(rows.get(statuses.GENERATION_ROW, (-1, None))[0]), rows[1][1]

    @staticmethod
    def _revision(c: Connection) -> int:
        return int(c.execute(_REVISION).scalar_one())

    @staticmethod
    def _load(c: Connection, rev: int) -> State:
        fixed: dict[str, list[tuple[int, FixedIP]]] = {}
        for r in c.execute(sa.select(t.ip_allocations).where(t.ip_allocations.c.port_id.is_not(None))):
            from ipaddress import IPv4Address
            fixed.setdefault(r.port_id, []).append((r.position, FixedIP(r.subnet_id, IPv4Address(r.ip_address))))
        coll: dict[str, list[Any]] = {}
        meta: dict[Key, Meta] = {}
        for kind in KINDS:
            items = []
            for r in c.execute(sa.select(TABLES[kind])):
                ips = tuple(f for _, f in sorted(fixed.get(r.id, []))) if kind == "ports" else ()
                items.append(from_row(kind, r, ips))
                meta[(kind, r.id)] = meta_from_row(r)
            coll[kind] = items
        hosts, created = [], {}
        for r in c.execute(sa.select(t.hosts)):
            hosts.append(host_from_row(r))
            created[r.name] = r.created_at
        cloud = Cloud.of(hosts=hosts, revision=rev, **coll)
        return State(cloud, immutables.Map(meta), immutables.Map(created))

    def _apply(self, c: Connection, before: State, change: Change, rev: int,
               prev_stamp: str | None) -> tuple[State, changelog.Written]:
        """Write CHANGE as revision REV; PREV_STAMP is the stamp of revision REV - 1, read in this
        transaction (`_revisions`)."""
        old = before.cloud
        cs = change.changeset if change.changeset is not None else changeset_between(old, change.cloud)
        if self.verify_changesets:
            _verify(old, change, cs)
        ts = now()
        added: dict[str, list[str]] = {k: [] for k in KINDS}
        removed: dict[str, list[str]] = {k: [] for k in KINDS}
        changed: dict[str, list[str]] = {k: [] for k in KINDS}
        upserts: list[Resource] = []
        deletes: list[ResourceKey] = []
        host_up: list[Host] = []
        host_new: set[str] = set()
        host_del: list[str] = []
        for v in cs.upserts:
            kind, i = key_of(v)
            o = getattr(old, kind).get(i)
            if o is not None and (o is v or o == v):
                continue
            upserts.append(v)
            if kind == "hosts":
                host_up.append(v)
                if o is None:
                    host_new.add(i)
            else:
                (added if o is None else changed)[kind].append(i)
        for kind, i in cs.deletes:
            if i not in getattr(old, kind):
                continue
            deletes.append((kind, i))
            if kind == "hosts":
                host_del.append(i)
            else:
                removed[kind].append(i)
        for (kind, i), desc in change.descriptions.items():   # a description only: bookkeeping
            if kind in changed and i in getattr(old, kind) and i not in changed[kind] and \
                    desc != before.meta_of(kind, i).description:
                changed[kind].append(i)
        new_cs = ChangeSet(tuple(upserts), tuple(deletes), rev)
        cloud, written = self.changelog.record(c, old, new_cs, rev, prev_stamp)
        realloc = {
            "ports": removed["ports"] + [i for i in changed["ports"]
                                        if (old.ports[i].fixed_ips, old.ports[i].network_id)
                                        != (cloud.ports[i].fixed_ips, cloud.ports[i].network_id)],
            "floatingips": removed["floatingips"] + [
                i for i in changed["floatingips"]
                if old.floatingips[i].floating_ip_address != cloud.floatingips[i].floating_ip_address],
        }
        a = t.ip_allocations
        for kind, col in (("ports", a.c.port_id), ("floatingips", a.c.floatingip_id)):
            for chunk in _chunks(realloc[kind]):
                c.execute(a.delete().where(col.in_(chunk)))
        with _as_map(before.meta).mutate() as meta:
            for kind in reversed(KINDS):
                tab = TABLES[kind]
                for chunk in _chunks(removed[kind]):
                    c.execute(tab.delete().where(tab.c.id.in_(chunk)))
                for i in removed[kind]:
                    meta.pop((kind, i), None)
            for kind in KINDS:
                tab = TABLES[kind]
                coll = getattr(cloud, kind)
                ins = []
                for i in added[kind]:
                    m = Meta(ts, ts, 1, change.descriptions.get((kind, i), ""))
                    if kind == "floatingips":
                        m = Meta(ts, ts, 1, coll[i].description)
                    meta[(kind, i)] = m
                    ins.append(to_row(kind, coll[i], m))
                if ins:
                    c.execute(tab.insert(), ins)
                for i in changed[kind]:
                    pm = before.meta_of(kind, i)
                    desc = change.descriptions.get((kind, i), pm.description)
                    if kind == "floatingips":
                        desc = coll[i].description
                    m = Meta(pm.created_at or ts, ts, pm.revision_number + 1, desc)
                    meta[(kind, i)] = m
                    c.execute(tab.update().where(tab.c.id == i).values(**to_row(kind, coll[i], m)))
            new_meta = meta.finish()
        allocs = []
        for kind in ("ports", "floatingips"):
            coll = getattr(cloud, kind)
            for i in added[kind] + [i for i in realloc[kind] if i in coll]:
                allocs.extend(allocation_rows(kind, coll[i]))
        if allocs:
            c.execute(a.insert(), allocs)
        with _as_map(before.host_created).mutate() as created:
            for name in host_del:
                c.execute(t.hosts.delete().where(t.hosts.c.name == name))
                created.pop(name, None)
            for h in host_up:
                if h.name in host_new:
                    c.execute(t.hosts.insert().values(name=h.name, mode=h.mode.value, created_at=ts, heartbeat_at=ts))
                    created[h.name] = ts
                else:
                    c.execute(t.hosts.update().where(t.hosts.c.name == h.name).values(mode=h.mode.value))
            new_created = created.finish()
        c.execute(t.revision.update().where(t.revision.c.id == 1).values(value=rev))
        return State(cloud, new_meta, new_created), written


def _as_map(m: Mapping) -> immutables.Map:
    return m if isinstance(m, immutables.Map) else immutables.Map(m)


def _verify(old: Cloud, change: Change, cs: ChangeSet) -> None:
    """Tests: the write's ChangeSet makes exactly the Workspace's snapshot, which is valid."""
    got, _ = apply(old, ChangeSet(cs.upserts, cs.deletes, change.cloud.revision))
    if got != change.cloud:
        raise AssertionError(f"the write's ChangeSet does not make its snapshot: "
                             f"{changeset_between(got, change.cloud)}")
    Cloud(dict(got.networks), dict(got.subnets), dict(got.routers), dict(got.ports), dict(got.floatingips),
          dict(got.hosts)).validate()


def _chunks(ids: list[str], n: int = 500):
    for k in range(0, len(ids), n):
        yield ids[k:k + n]


class _locked:
    def __init__(self, lock: threading.Lock, cm):
        self.lock, self.cm = lock, cm

    def __enter__(self):
        self.lock.acquire()
        try:
            return self.cm.__enter__()
        except BaseException:
            self.lock.release()
            raise

    def __exit__(self, *exc):
        try:
            return self.cm.__exit__(*exc)
        finally:
            self.lock.release()

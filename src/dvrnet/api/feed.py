"""The change feed's waiting room: long-polls wait here for the revision to move, or — for the
per-host delta feed — for a revision that changes *their host's* view.

Invariants:
- waiting is asyncio only (an Event per revision step, one per host being waited on), never a
  thread per waiter;
- `latest` and every host's `host_revision` only grow;
- sources of news: writes in this process report (revision, hosts whose view changed) through a
  store change listener (thread-safe hand-off with `call_soon_threadsafe`). Writes by other
  servers sharing the database: on PostgreSQL one listener thread per server holds
  `LISTEN dvrnet_changes` (each write NOTIFYs its revision at commit) and, per notification,
  reads from the change log which hosts the new revisions concern; nothing polls while that
  connection is up. On SQLite (no NOTIFY), and on PostgreSQL while the listening connection is
  down, one poller task reads the revision every `poll_interval` seconds while anyone waits;
- `head()` is a `Store.head` read that started after the call (concurrent callers share one: a
  thousand hosts woken by one write cost one SELECT, not a thousand);
- `wait_past(since, timeout)` returns as soon as `latest > since`; `wait_host(host, since,
  timeout)` as soon as a revision above `since` changed HOST's view (a host a change does not
  concern is not woken); both give up after `timeout` seconds.
"""
from __future__ import annotations

import asyncio
import logging
import threading

from starlette.concurrency import run_in_threadpool

from ..store import Store
from ..store.changelog import CHANNEL, Head
from ..store.engine import normalize_url

log = logging.getLogger("dvrnet.api")


class Feed:
    def __init__(self, store: Store, poll_interval: float = 1.0, listen: bool = True):
        self.store = store
        self.poll_interval = poll_interval
        self.latest = 0
        self.host_revision: dict[str, int] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._event: asyncio.Event | None = None
        self._host_events: dict[str, asyncio.Event] = {}
        self._waiters = 0
        self._poller: asyncio.Task | None = None
        self._scanned = 0                   # change log read for other servers' writes up to here
        self._listen = listen and store.engine.dialect.name == "postgresql"
        self._listening = threading.Event()  # set while the LISTEN connection is up
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._head_cur: asyncio.Future | None = None      # the head read under way
        self._head_next: asyncio.Future | None = None     # the one after it, not started yet
        store.add_listener(self._from_thread)
        store.add_change_listener(self._changes_from_thread)

    def close(self) -> None:
        self.store.remove_listener(self._from_thread)
        self.store.remove_change_listener(self._changes_from_thread)
        self._stop.set()
        if self._poller is not None:
            self._poller.cancel()
        if self._thread is not None:
            self._thread.join(5)

    def bind(self) -> None:
        """Attach to the running event loop (idempotent); on PostgreSQL start listening."""
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
            self._event = asyncio.Event()
            if self._listen and self._thread is None:
                self._thread = threading.Thread(target=self._listen_loop, name="dvrnet-listen", daemon=True)
                self._thread.start()

    # ---- news --------------------------------------------------------------------------------
    def _call(self, fn, *args) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(fn, *args)
            except RuntimeError:
                pass
        else:
            fn(*args)

    def _from_thread(self, revision: int) -> None:
        self._call(self.observe, revision)

    def _changes_from_thread(self, revision: int, hosts: frozenset[str]) -> None:
        self._call(self.observe_hosts, {h: revision for h in hosts})

    def observe(self, revision: int) -> None:
        """Note a revision seen (on the event loop); wakes the waiters when it is new."""
        if revision <= self.latest:
            return
        self.latest = revision
        if self._event is not None:
            ev, self._event = self._event, asyncio.Event()
            ev.set()

    def observe_hosts(self, revisions: dict[str, int]) -> None:
        """Note, per host, the last revision seen that changed its view; wakes its waiters."""
        for h, rev in revisions.items():
            if rev <= self.host_revision.get(h, 0):
                continue
            self.host_revision[h] = rev
            ev = self._host_events.pop(h, None)
            if ev is not None:
                ev.set()

    # ---- the database's head, shared ----------------------------------------------------------
    async def head(self) -> Head:
        """`Store.head()`, from a read that starts after this call; callers that come while one
        has not started yet share it."""
        fut = self._head_next
        if fut is None:
            fut = self._head_next = asyncio.ensure_future(self._head_after(self._head_cur))
        return await asyncio.shield(fut)

    async def _head_after(self, prev: asyncio.Future | None) -> Head:
        if prev is not None and not prev.done():
            await asyncio.wait([prev])
        self._head_cur, self._head_next = self._head_next, None     # started: later callers need the next
        return await run_in_threadpool(self.store.head)

    # ---- waiting -----------------------------------------------------------------------------
    async def wait_past(self, since: int, timeout: float) -> int:
        self.bind()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        self._begin_wait()
        try:
            while self.latest <= since:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                assert self._event is not None
                try:
                    await asyncio.wait_for(self._event.wait(), remaining)
                except TimeoutError:
                    break
        finally:
            self._waiters -= 1
        return self.latest

    async def wait_host(self, host: str, since: int, timeout: float) -> bool:
        """Wait until a revision above SINCE changed HOST's view; False on timeout."""
        self.bind()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        self._begin_wait()
        try:
            while self.host_revision.get(host, 0) <= since:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    return False
                ev = self._host_events.get(host)
                if ev is None:
                    ev = self._host_events[host] = asyncio.Event()
                try:
                    await asyncio.wait_for(ev.wait(), remaining)
                except TimeoutError:
                    return self.host_revision.get(host, 0) > since
            return True
        finally:
            self._waiters -= 1

    def _begin_wait(self) -> None:
        self._waiters += 1
        if self._poller is None or self._poller.done():
            self._poller = asyncio.create_task(self._poll())

    # ---- other servers' writes ---------------------------------------------------------------
    def _scan(self, upto: int) -> None:
        """(Any thread.) Read which hosts the revisions in (scanned, UPTO] concern and report them."""
        after = self._scanned
        if upto <= after:
            return
        hosts = self.store.concerned_hosts(after, upto)
        self._scanned = max(self._scanned, upto)
        self._call(self.observe_hosts, hosts)
        self._call(self.observe, upto)

    async def _poll(self) -> None:
        while self._waiters > 0:
            await asyncio.sleep(self.poll_interval)
            if self._listening.is_set():
                continue                    # NOTIFY tells us; no polling while it is up
            try:
                rev = await run_in_threadpool(self.store.current_revision)
                if self._scanned == 0:
                    self._scanned = min(rev, self.latest)
                await run_in_threadpool(self._scan, rev)
            except Exception:  # noqa: BLE001, S112 - database away: keep waiting, the next poll retries
                continue

    def _listen_loop(self) -> None:
        """(Thread.) LISTEN on PostgreSQL; per notification, scan the log up to its revision."""
        import psycopg

        dsn = normalize_url(self.store.url).replace("postgresql+psycopg://", "postgresql://", 1)
        backoff = 0.5
        while not self._stop.is_set():
            try:
                with psycopg.connect(dsn, autocommit=True) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    if self._scanned == 0:
                        self._scanned = self.store.current_revision()
                    self._listening.set()
                    self._scan(self.store.current_revision())     # what was missed while away
                    backoff = 0.5
                    while not self._stop.is_set():
                        for n in conn.notifies(timeout=1.0):
                            try:
                                rev = int(n.payload)
                            except ValueError:
                                continue
                            self._scan(rev)
                            if self._stop.is_set():
                                break
            except Exception as e:  # noqa: BLE001 - connection lost: poll meanwhile, reconnect
                self._listening.clear()
                if self._stop.is_set():
                    break
                log.warning("LISTEN %s failed (%s); polling every %.1f s until it is back", CHANNEL, e,
                            self.poll_interval)
                self._stop.wait(backoff)
                backoff = min(5.0, backoff * 2)
        self._listening.clear()

"""The change feed's waiting room: long-polls wait here for the global revision to move.

Invariants:
- waiting is asyncio only (an Event per revision step), never a thread per waiter;
- `latest` only grows. Writes in this process report their revision through a store listener
  (thread-safe hand-off with `call_soon_threadsafe`); writes by other servers sharing the database
  are noticed by one poller task that reads the revision every `poll_interval` seconds while
  anyone is waiting;
- `wait_past(since, timeout)` returns as soon as `latest > since`, or after `timeout` seconds.
"""
from __future__ import annotations

import asyncio

from starlette.concurrency import run_in_threadpool

from ..store import Store


class Feed:
    def __init__(self, store: Store, poll_interval: float = 1.0):
        self.store = store
        self.poll_interval = poll_interval
        self.latest = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._event: asyncio.Event | None = None
        self._waiters = 0
        self._poller: asyncio.Task | None = None
        store.add_listener(self._from_thread)

    def close(self) -> None:
        self.store.remove_listener(self._from_thread)
        if self._poller is not None:
            self._poller.cancel()

    def bind(self) -> None:
        """Attach to the running event loop (idempotent)."""
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
            self._event = asyncio.Event()

    def _from_thread(self, revision: int) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(self.observe, revision)
            except RuntimeError:
                pass
        else:
            self.latest = max(self.latest, revision)

    def observe(self, revision: int) -> None:
        """Note a revision seen (on the event loop); wakes the waiters when it is new."""
        if revision <= self.latest:
            return
        self.latest = revision
        if self._event is not None:
            ev, self._event = self._event, asyncio.Event()
            ev.set()

    async def wait_past(self, since: int, timeout: float) -> int:
        self.bind()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        self._waiters += 1
        if self._poller is None or self._poller.done():
            self._poller = asyncio.create_task(self._poll())
        try:
            while self.latest <= since:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    await asyncio.wait_for(self._event.wait(), remaining)
                except TimeoutError:
                    break
        finally:
            self._waiters -= 1
        return self.latest

    async def _poll(self) -> None:
        while self._waiters > 0:
            await asyncio.sleep(self.poll_interval)
            try:
                rev = await run_in_threadpool(self.store.current_revision)
            except Exception:  # noqa: BLE001, S112 - database away: keep waiting, the next poll retries
                continue
            self.observe(rev)

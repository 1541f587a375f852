"""Short cyclic-GC pauses in processes that hold a large, long-lived model (the server, an agent).

CPython's full collection (generation 2) walks every tracked object: with 10,000 FIPs' model,
indexes, plans and kernel reads alive that is 50-330 ms on the 2-CPU lab host, at moments the
collector picks — in the middle of a +1 FIP write or pass (docs/benchmarks.md). `settle()`
collects once and moves every survivor to the permanent generation (`gc.freeze`), so the
automatic collections after it walk only what was allocated since; objects that die are still
freed by reference counting, and frozen ones that end up in a garbage cycle are collected by the
next `settle` (it unfreezes first).

`Settler` decides when: only once the process has been quiet (no activity for `quiet_s`) after
some activity since the last settle, and at most every `min_interval_s` — so the one long pause
falls between bursts of work, never inside one. Activity is whatever the owner calls `touch()`
for (the server: store writes; the agent: views and passes).
"""
from __future__ import annotations

import gc
import threading
import time
from collections.abc import Callable


def settle() -> None:
    """Collect everything, then freeze the survivors (see the module docstring)."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()


class Settler:
    def __init__(self, quiet_s: float = 1.0, min_interval_s: float = 30.0,
                 clock: Callable[[], float] = time.monotonic, action: Callable[[], None] = settle):
        self.quiet_s, self.min_interval_s = quiet_s, min_interval_s
        self.clock, self.action = clock, action
        self._last_activity: float | None = None
        self._last_settle: float | None = None
        self.settles = 0

    def touch(self) -> None:
        self._last_activity = self.clock()

    def maybe(self) -> bool:
        """Settle now if the process was busy since the last settle and has been quiet since."""
        now = self.clock()
        busy = self._last_activity
        if busy is None or now - busy < self.quiet_s:
            return False
        if self._last_settle is not None and (busy <= self._last_settle or now - self._last_settle < self.min_interval_s):
            return False
        self.action()
        self._last_settle = self.clock()
        self.settles += 1
        return True

    def start(self, every: float = 0.5) -> threading.Event:
        """Look every EVERY seconds in a daemon thread; set the returned event to stop it."""
        stop = threading.Event()

        def loop() -> None:
            while not stop.wait(every):
                self.maybe()
        threading.Thread(target=loop, name="heap-settle", daemon=True).start()
        return stop

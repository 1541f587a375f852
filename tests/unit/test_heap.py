"""heap.py: `settle` frees garbage cycles (also ones among objects a previous settle froze) and
freezes the survivors; `Settler` settles only after activity followed by `quiet_s` without any,
and at most every `min_interval_s`."""
from __future__ import annotations

import gc
import weakref

from dvrnet.heap import Settler, settle


class _Node:
    def __init__(self) -> None:
        self.other: _Node | None = None


def _cycle() -> weakref.ref:
    a, b = _Node(), _Node()
    a.other, b.other = b, a
    return weakref.ref(a)


def test_settle_collects_cycles_and_freezes_the_survivors():
    try:
        alive = _Node()
        gone = _cycle()
        settle()
        assert gone() is None and gc.get_freeze_count() > 0
        # a cycle among frozen objects is not collected by automatic collections...
        a, b = _Node(), _Node()
        a.other, b.other, alive.other = b, a, a
        settle()                        # a and b frozen now, reachable from ALIVE
        w = weakref.ref(a)
        del a, b
        alive.other = None              # the frozen cycle is garbage
        gc.collect()
        assert w() is not None
        settle()                        # ...but by the next settle
        assert w() is None
    finally:
        gc.unfreeze()


def test_settler_waits_for_quiet_after_activity_and_not_more_often_than_its_interval():
    now = [0.0]
    done: list[float] = []
    s = Settler(quiet_s=1.0, min_interval_s=30.0, clock=lambda: now[0], action=lambda: done.append(now[0]))
    assert not s.maybe()                # nothing happened yet
    s.touch()
    now[0] = 0.5
    assert not s.maybe()                # not quiet for long enough
    now[0] = 1.2
    assert s.maybe() and done == [1.2]
    now[0] = 40.0
    assert not s.maybe()                # quiet, but nothing happened since
    s.touch()
    now[0] = 40.5
    assert not s.maybe()
    now[0] = 41.1
    assert s.maybe() and done == [1.2, 41.1]
    now[0] = 42.0
    s.touch()
    now[0] = 43.5
    assert not s.maybe()                # busy and quiet again, but within 30 s of the last settle
    now[0] = 71.2
    assert s.maybe() and s.settles == 3

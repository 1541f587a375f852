"""What a source of the host's model hands the agent loop: a `View`, and the `Source` interface.

Every source — dvrnet's delta feed (`agent.feed.Feed`), Neutron mode's `NeutronSource`, tests —
answers `next_view(since) -> View | None`:

- `since=None`: answer now (no long-poll) with the current view, or None if there is none yet;
- `since=<revision of the last View>`: wait (a source-chosen while, e.g. 25 s) until the view
  changes, then answer; on timeout answer the current view (possibly the same revision). None after
  a failure (the source backed off first); the loop keeps the data plane as it is and asks again.

`View(revision, cloud, touched)`:

- `revision`: the source's revision of `cloud` (any int that changes when the view changes);
- `cloud`: the host's model, an immutable `model.Cloud`;
- `touched`: how `cloud` relates to the cloud of the *previous View this source returned*:
  - `None` — a snapshot: nothing is known about the relation (first view, resync, a source that
    only has snapshots). The planner compares it with what it planned last
    (`changeset_between`, O(n)) — correct, never fast;
  - a frozenset of touched keys — `cloud` is `model.changeset.apply(previous.cloud, cs)` (or a
    chain of such applies) and these are the keys `apply` returned (unions for a chain). Then the
    planner re-plans exactly the namespaces reading one of them (O(change)); an empty set means
    "nothing changed" and the loop runs no pass for it (unless its own timers want one).
  A source producing ChangeSets (from a delta feed, or from a fetched subgraph through
  `changeset.changeset_replacing`) applies them itself and returns the result with its keys; it
  must return `touched=None` whenever it replaced its model any other way.

The loop (`agent.loop.Agent.run`) may skip views (it plans only when it is free): it unions the
touched keys of the views it did not plan, and falls back to `None` if any of them was a snapshot,
so `HostPlanner.plan(cloud, hints, touched)` always gets the keys touched since the cloud it last
planned.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from ..model import Cloud
from ..model.changeset import Key


@dataclass(frozen=True)
class View:
    revision: int
    cloud: Cloud
    touched: frozenset[Key] | None = None       # None: a snapshot (see the module docstring)


class Source(Protocol):
    def next_view(self, since: int | None) -> View | None: ...


def chain(pending: frozenset[Key] | None, view: View) -> frozenset[Key] | None:
    """The touched keys from the last planned cloud to VIEW's cloud, given PENDING (those up to the
    previous view, `frozenset()` right after a pass): None as soon as one link is a snapshot."""
    if pending is None or view.touched is None:
        return None
    return pending | view.touched if pending else view.touched

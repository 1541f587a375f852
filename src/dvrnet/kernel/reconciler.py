"""Reconciler: read → diff → apply → read back → diff again, for one node (one prefix).

    r = Reconciler(prefix="n1-")          # "" in production
    result = r.sync(desired)              # desired: dvrnet.plan.state.HostState
    result.ok, result.applied, result.errors, result.differences
    r.sync(desired, replan=fn)            # fn(observed) -> desired: re-plan from what is there

`sync` is the one reconciliation pass: the agent runs it once per change (agent/loop.py).

Invariants:
- Level-triggered and stateless: every pass starts from what the kernel holds.
- Errors in one part never stop the rest; the failed part shows up again in the verify diff and
  is retried by the next pass.
- A namespace (or its nft ruleset) that cannot be read is left out of the pass — never treated as
  empty — and reported in `result.errors`, whether the first read or the read back failed: a
  result with a namespace it could not read is never ok.
- `result.verify` is the diff after apply; empty means converged. `result.differences` renders it
  (`fip-X table 3405803776 default: desired via 203.0.113.1, found via 198.51.100.1`).

`Reconciler(prefix, watch=True)` (the agent's): reads through `incremental_read.IncrementalObserver` —
netlink event sockets per namespace say which namespaces (route slices, rules, neighbours, nft)
changed since they were last read, and only those are read again; `sync(desired, full=True)` and
`observe(desired, full=True)` read everything (the periodic resync). The diff skips namespaces
whose desired and observed values are the same objects as when they last diffed to nothing
(`reconcile.diff.DiffMemo`). Call `close()` when done (the sockets keep deleted namespaces alive).

`Reconciler(prefix, switch=ovs.Switch(netns, db))`: the node's Open vSwitch (the OVS port kinds,
plan/plug.py): every read is overlaid with what its database says (`ovs_observe.py`: port kinds,
carrier, the ports themselves) and plans' OVS ops run against it.
"""
from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from typing import Self

from dvrnet.plan.state import HostState, Namespace
from dvrnet.reconcile.diff import DiffMemo, diff
from dvrnet.reconcile.ops import Op, Plan
from dvrnet.reconcile.verify import describe_plan

from .apply import OpError, execute
from .incremental_read import IncrementalObserver
from .ovs import Switch
from .ovs_observe import OvsObserver
from .process import ProcessReader
from .protocols import register_rt_proto
from .read import Observation, observe, read_host
from .takeover import NeutronState

Replan = Callable[[HostState], HostState]     # observed -> the desired state to reconcile
# number of ops -> the context the apply runs in, yielding its progress callback (or None)
ApplyProgress = Callable[[int], AbstractContextManager[Callable[[int], None] | None]]


@dataclass
class Result:
    plan: Plan
    applied: tuple[Op, ...]
    errors: tuple[OpError | str, ...]
    verify: Plan
    differences: tuple[str, ...]
    timings: dict[str, float] = field(default_factory=dict)
    desired: HostState | None = None        # what was reconciled (after `replan`)
    observed: HostState | None = None       # what the kernel held last: read back after an apply, else read first

    @property
    def ok(self) -> bool:
        return not self.errors and not self.differences

    def __str__(self) -> str:
        lines = [(f"applied {len(self.applied)} of {len(self.plan)} ops, {len(self.errors)} errors, "
                 f"{len(self.differences)} differences")]
        lines += [f"error: {e}" for e in self.errors]
        lines += [f"differs: {d}" for d in self.differences]
        return "\n".join(lines)


class Reconciler:
    def __init__(self, prefix: str = "", register_proto: bool = True, watch: bool = False,
                 switch: Switch | None = None, neutron: NeutronState | None = None) -> None:
        """NEUTRON: look for neutron-l3-agent's objects until none are left, and refuse or take
        them over (kernel/takeover.py); the agent's reconciler has one."""
        self.prefix = prefix
        self.neutron = neutron
        self.switch = switch
        self.ovs: OvsObserver | None = OvsObserver(switch) if switch is not None else None
        self.observer: IncrementalObserver | None = IncrementalObserver(prefix) if watch else None
        self.processes = ProcessReader(prefix)        # owned daemons (plan/process.py), found in /proc
        self.memo: DiffMemo | None = DiffMemo() if watch else None
        self._desired: dict[str, Namespace] = {}
        if register_proto:
            register_rt_proto()

    def close(self) -> None:
        if self.observer is not None:
            self.observer.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def intern(self, desired: HostState) -> HostState:
        """`desired` with each namespace equal to the last interned one replaced by that object
        (equal values; a fresh plan then lets the diff memo skip unchanged namespaces)."""
        if self.memo is None:
            return desired
        out, changed = {}, False
        for n, ns in desired.namespaces.items():
            old = self._desired.get(n)
            if old is not None and old is not ns and old == ns:
                ns, changed = old, True
            out[n] = ns
        self._desired = out
        return HostState(desired.host, out) if changed else desired

    def _observe(self, desired: HostState, full: bool = False) -> Observation:
        if self.observer is not None:
            obs = self.observer.observe(desired, full=full)
            reread: set[str] | None = set(self.observer.last_dirty)
        else:
            obs, reread = observe(desired, self.prefix), None
            full = True
        if self.ovs is not None:
            obs = replace(obs, state=self.ovs.annotate(desired, obs.state, obs.unreadable, reread, full))
        return replace(obs, state=self.processes.attach(obs.state, desired, full))

    def observe(self, desired: HostState, full: bool = False) -> HostState:
        if self.observer is None and self.ovs is None:
            return self.processes.attach(read_host(desired, self.prefix), desired, True)
        obs = self._observe(desired, full)
        if obs.unreadable or obs.nft_unreadable:
            from .iproute import ReadError
            raise ReadError("; ".join(f"{n}: {m}" for n, m in {**obs.unreadable, **obs.nft_unreadable}.items()))
        return obs.state

    def diff(self, desired: HostState, observed: HostState) -> Plan:
        desired = self.intern(desired)
        plan = diff(desired, observed, self.prefix, memo=self.memo)
        if self.neutron is not None and self.neutron.pending:
            plan = self.neutron.amend(plan, desired, observed, lambda seen: diff(desired, seen, self.prefix))
        return plan

    def plan(self, desired: HostState, observed: HostState | None = None) -> Plan:
        return self.diff(desired, observed if observed is not None else self.observe(desired))

    def apply(self, plan: Plan, done=None) -> list[OpError]:
        """DONE: progress, called with the number of ops of each run as it finishes (apply.execute)."""
        try:
            return execute(plan, done=done, switch=self.switch)
        finally:
            self.processes.applied(plan)
            if self.observer is not None:
                self.observer.applied(plan)
            if self.ovs is not None:
                self.ovs.applied(plan)

    def _scoped(self, desired: HostState, obs: Observation) -> tuple[HostState, HostState, list[str]]:
        """Desired and observed state without what could not be read (never treated as empty),
        and one error per namespace (or nft ruleset) left out."""
        errors = [f"{n}: {m}" for n, m in sorted({**obs.unreadable, **obs.nft_unreadable}.items())]
        if not errors:
            return desired, obs.state, errors       # same objects: the diff memo can match them

        def trim(h: HostState) -> HostState:
            out = {}
            for n, ns in h.namespaces.items():
                if n in obs.unreadable:
                    continue
                out[n] = replace(ns, nft={}) if n in obs.nft_unreadable else ns
            return HostState(h.host, out, h.orphans)
        return trim(desired), trim(obs.state), errors

    def sync(self, desired: HostState, verify: bool = True, full: bool = False,
             replan: Replan | None = None, progress: ApplyProgress | None = None) -> Result:
        """One pass: read, (re-plan,) diff, apply, read back and diff again.

        REPLAN(observed) returns the desired state to reconcile, given what the kernel holds (the
        agent keeps the link-local slots already there); returning DESIRED itself changes nothing,
        anything else is read for again (what is read depends on the desired state). A namespace
        or nft ruleset that cannot be read, before or after the apply, is left out of the pass and
        named in `errors`: the result is not ok, the rest is reconciled. PROGRESS(number of ops)
        gives the context of the apply, yielding the `done` callback of `apply` (or None)."""
        t = {"start": time.perf_counter()}
        want = self.intern(desired)
        obs = self._observe(want, full)
        if replan is not None:
            again = replan(obs.state)
            if again is not desired:
                want = self.intern(again)
                obs = self._observe(want)
        scoped, observed, read_errors = self._scoped(want, obs)
        t["read"] = time.perf_counter()
        plan = self.diff(scoped, observed)
        t["diff"] = time.perf_counter()
        errors: list[OpError] = []
        if plan:
            with (progress(len(plan)) if progress is not None else contextlib.nullcontext(None)) as done:
                errors = self.apply(plan, done=done)
        t["apply"] = time.perf_counter()
        failed = {id(e.op) for e in errors}
        applied = tuple(op for op in plan if id(op) not in failed)
        vplan = Plan()
        verify_errors: list[str] = []
        if verify and (plan or plan.conflicts):
            obs = self._observe(want)
            scoped2, observed2, verify_errors = self._scoped(want, obs)
            vplan = self.diff(scoped2, observed2)
        t["verify"] = time.perf_counter()
        timings = {k: t[k] - t[p] for p, k in zip(("start", "read", "diff", "apply"),
                                                  ("read", "diff", "apply", "verify"))}
        errs: tuple[OpError | str, ...] = (tuple(read_errors) + tuple(errors)
                                            + tuple(f"conflict: {c}" for c in plan.conflicts)
                                            + tuple(f"reading back {e}" for e in verify_errors))
        return Result(plan, applied, errs, vplan, describe_plan(vplan), timings, want, obs.state)

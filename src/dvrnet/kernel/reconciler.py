"""Reconciler: read → diff → apply → read back → diff again, for one node (one prefix).

    r = Reconciler(prefix="n1-")          # "" in production
    result = r.sync(desired)              # desired: dvrnet.plan.state.HostState
    result.ok, result.applied, result.errors, result.differences

Invariants:
- Level-triggered and stateless: every pass starts from what the kernel holds.
- Errors in one part never stop the rest; the failed part shows up again in the verify diff and
  is retried by the next pass.
- `result.verify` is the diff after apply; empty means converged. `result.differences` renders it
  (`fip-X table 3405803776 default: desired via 203.0.113.1, found via 198.51.100.1`).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

from dvrnet.plan.state import HostState
from dvrnet.reconcile.diff import diff
from dvrnet.reconcile.ops import Op, Plan
from dvrnet.reconcile.verify import describe_plan

from .apply import OpError, execute
from .protocols import register_rt_proto
from .read import Observation, observe, read_host


@dataclass
class Result:
    plan: Plan
    applied: tuple[Op, ...]
    errors: tuple[OpError | str, ...]
    verify: Plan
    differences: tuple[str, ...]
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.errors and not self.differences

    def __str__(self) -> str:
        lines = [f"applied {len(self.applied)} of {len(self.plan)} ops, {len(self.errors)} errors, "
                 f"{len(self.differences)} differences"]
        lines += [f"error: {e}" for e in self.errors]
        lines += [f"differs: {d}" for d in self.differences]
        return "\n".join(lines)


class Reconciler:
    def __init__(self, prefix: str = "", register_proto: bool = True) -> None:
        self.prefix = prefix
        if register_proto:
            register_rt_proto()

    def observe(self, desired: HostState) -> HostState:
        return read_host(desired, self.prefix)

    def plan(self, desired: HostState, observed: HostState | None = None) -> Plan:
        return diff(desired, observed if observed is not None else self.observe(desired), self.prefix)

    def apply(self, plan: Plan) -> list[OpError]:
        return execute(plan)

    def _scoped(self, desired: HostState) -> tuple[HostState, HostState, list[str]]:
        """Desired and observed state without what could not be read (never treated as empty)."""
        obs: Observation = observe(desired, self.prefix)
        errors = [f"{n}: {m}" for n, m in sorted({**obs.unreadable, **obs.nft_unreadable}.items())]

        def trim(h: HostState) -> HostState:
            out = {}
            for n, ns in h.namespaces.items():
                if n in obs.unreadable:
                    continue
                out[n] = replace(ns, nft={}) if n in obs.nft_unreadable else ns
            return HostState(h.host, out)
        return trim(desired), trim(obs.state), errors

    def sync(self, desired: HostState, verify: bool = True) -> Result:
        t = {"start": time.perf_counter()}
        want, observed, read_errors = self._scoped(desired)
        t["read"] = time.perf_counter()
        plan = diff(want, observed, self.prefix)
        t["diff"] = time.perf_counter()
        errors = execute(plan) if plan else []
        t["apply"] = time.perf_counter()
        failed = {id(e.op) for e in errors}
        applied = tuple(op for op in plan if id(op) not in failed)
        vplan = Plan()
        if verify and (plan or plan.conflicts):
            want2, observed2, read_errors2 = self._scoped(desired)
            vplan = diff(want2, observed2, self.prefix)
        t["verify"] = time.perf_counter()
        timings = {k: t[k] - t[p] for p, k in zip(("start", "read", "diff", "apply"),
                                                  ("read", "diff", "apply", "verify"))}
        errs: tuple[OpError | str, ...] = (tuple(read_errors) + tuple(errors)
                                            + tuple(f"conflict: {c}" for c in plan.conflicts))
        return Result(plan, applied, errs, vplan, describe_plan(vplan), timings)

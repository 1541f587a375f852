"""What still differs after an apply, one line per object, nmstate-style:

    fip-X table 3405803776 default: desired via 203.0.113.1, found via 198.51.100.1

Pure: renders the ops of a (verify) plan as differences (each op's own `describe()`, ops.py);
an empty plan means "converged".
"""
from __future__ import annotations

from .ops import Plan


def describe_plan(plan: Plan) -> tuple[str, ...]:
    out = [s for s in (op.describe() for op in plan) if s is not None]
    return tuple(out) + tuple(plan.conflicts)

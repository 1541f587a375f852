"""Pure reconciliation: ownership, diff → Plan of ops, verify descriptions. No I/O here."""
from .diff import NotOwned, diff
from .ops import Plan
from .ownership import Ownership
from .verify import describe_plan

__all__ = ["NotOwned", "Ownership", "Plan", "describe_plan", "diff"]

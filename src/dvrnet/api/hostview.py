"""What one host's agent needs to know: `model.placement.host_view` (the one placement decides
which resources concern a host; see its module doc for the contents)."""
from __future__ import annotations

from ..model.placement import host_view, view_keys

__all__ = ["host_view", "view_keys"]

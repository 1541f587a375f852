"""What the control plane does to the model: Neutron's resource operations as pure-Python
operations on an in-memory `Workspace`. The API server persists their results; the seed scenario
and the tests use them directly (`workspace.py`: the operations and their checks; `dvr.py`: the DVR
side effects they set in motion; `store.py`: the tables, indexes and undo log). Imports `model`
and `ipam` only."""
from . import errors
from .workspace import UNSET, IpRequest, Workspace

__all__ = ["UNSET", "IpRequest", "Workspace", "errors"]

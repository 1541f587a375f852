"""Pure planner: the model + one host -> desired kernel state of every namespace on that host.
Imports only `dvrnet.model`."""
from .config import PlanConfig
from .host import plan_host
from .render import render

__all__ = ["PlanConfig", "plan_host", "render"]

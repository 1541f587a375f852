"""A picture of a node (`dvrnet show HOST --svg FILE`): its namespaces, ports and links, the
bridges they plug into, the fip- namespace's rules and tables per external subnet, what differs
from the desired state, and a traced path. `build` makes it a value (pure), `svg.render` draws it
(pure), `read.bridge_links` is the kernel read it needs besides the agent's reader."""
from __future__ import annotations

from .build import BridgeLink, Picture, build
from .svg import render

__all__ = ["BridgeLink", "Picture", "build", "render"]

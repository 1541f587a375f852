"""`dvrnet trace`: a packet's path namespace by namespace, as the model says and as the kernel
says, both ways (trace/tracer.py), on a real node from the server's view of it or across a lab's
nodes (trace/nodes.py); the first hop of an inbound trace per kind of external network
(trace/entry.py); what it reports (trace/hops.py)."""
from __future__ import annotations

from .hops import Check, Hop, KernelAnswer, Trace
from .nodes import Node, lab_nodes, server_fip_host, server_node
from .probe import route_get as kernel_route_get
from .tracer import TraceError, Tracer


def lab_tracer(info) -> Tracer:
    """A tracer over every node of a running lab, with the segment's probes (ARP, the ToR's routes)."""
    from .lab import segment
    return Tracer(lab_nodes(info), lab=info, segment=segment(info))


def trace(info, vm: str, dst: str) -> Trace:
    return lab_tracer(info).trace(vm, dst)


__all__ = ["Check", "Hop", "KernelAnswer", "Node", "Trace", "TraceError", "Tracer", "kernel_route_get",
           "lab_nodes", "lab_tracer", "server_fip_host", "server_node", "trace"]

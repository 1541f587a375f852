"""The nodes a trace can see: each one's desired state (the planner's, from the server's view of
that host, with the link-local /31s read back from its kernel: exactly what its agent plans) and
the view itself.

Sources (a desired-state source is a function returning `Node`s; Neutron mode plugs in its own,
translating what neutron-server says about the host into the same model):
- `server_node(host, server, cfg)`: one real node, from `dvrnet server` — `dvrnet trace` run on
  that node. A path that leaves it (to another node's FIP or SNAT namespace) ends at its edge;
  the node's view holds only its own FIPs, so `server_fip_host` asks the API where another is;
- `lab_nodes(info)`: every node of a running lab (all share this machine's kernel), so a path is
  followed across nodes.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..model import Cloud
from ..plan import PlanConfig
from ..plan.state import HostState


@dataclass
class Node:
    host: str
    prefix: str                  # netns prefix of the node's namespaces ("" in production)
    desired: HostState
    cloud: Cloud                 # the host's view (model)
    observed: HostState | None = None
    cfg: PlanConfig | None = None


def plan_node(cloud: Cloud, host: str, cfg: PlanConfig, switch=None) -> Node:
    """SWITCH: the node's Open vSwitch (kernel/ovs.py `Switch`) with an OVS port kind, so its
    ports are read as the agent reads them; None otherwise."""
    from ..agent.loop import desired_state
    from ..kernel import Reconciler
    desired, observed = desired_state(cloud, host, cfg, Reconciler(prefix=cfg.netns_prefix, register_proto=False,
                                                                   switch=switch))
    return Node(host, cfg.netns_prefix, desired, cloud, observed, cfg)


def server_node(host: str, server: str, cfg: PlanConfig, token: str | None = None, switch=None) -> Node:
    from ..agent.feed import Feed
    feed = Feed(server, host, "dvr", token=token, max_backoff=0)
    try:
        view = feed.fetch_once()
    finally:
        feed.close()
    return plan_node(view.cloud, host, cfg, switch)


def server_fip_host(server: str, token: str | None = None) -> Callable[[str], str | None]:
    """A function: FIP address -> the host its port is bound to, asked of `dvrnet server`'s API
    (None: no such FIP, not associated, or the server cannot say). A node's view holds only the
    FIPs it serves, so this is how a trace on one node names the node serving another FIP."""
    def served_at(addr: str) -> str | None:
        import httpx
        headers = {"X-Auth-Token": token} if token else {}
        try:
            with httpx.Client(base_url=server.rstrip("/"), headers=headers, timeout=8) as c:
                r = c.get("/v2.0/floatingips", params={"floating_ip_address": addr})
                r.raise_for_status()
                port = next((f["port_id"] for f in r.json()["floatingips"] if f.get("port_id")), None)
                if port is None:
                    return None
                r = c.get(f"/v2.0/ports/{port}")
                r.raise_for_status()
                return r.json()["port"].get("binding:host_id") or None
        except (httpx.HTTPError, ValueError, KeyError):
            return None
    return served_at


def lab_config(node, info=None) -> PlanConfig:
    """The PlanConfig the lab gives a node's agent (lab/up.py `_agent_args`): its prefixes, MAC
    and metadata settings, the lab's port kind (an OVS lab plugs router ports into br-int) and the
    agents' routed settings (lab/steps.py `agent_bgp`)."""
    from ..lab.steps import agent_bgp
    return PlanConfig(netns_prefix=node.prefix, bridge_netns=node.bridge_netns, dvr_mac=node.node_mac,
                      metadata=node.metadata(), port_kind=getattr(info, "port_kind", None) or "veth",
                      bgp=agent_bgp())


def lab_nodes(info, config: Callable = lab_config) -> list[Node]:
    from concurrent.futures import ThreadPoolExecutor

    from ..lab.steps import switch_of
    with ThreadPoolExecutor(max_workers=max(1, len(info.nodes))) as ex:
        return list(ex.map(lambda n: server_node(n.name, info.server_url or "", config(n, info), switch=switch_of(n)),
                           info.nodes))


NodeSource = Callable[[], Sequence[Node]]

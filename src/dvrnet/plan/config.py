"""Per-agent settings the planner needs besides the model."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PlanConfig:
    """netns_prefix: prepended to every namespace dvrnet creates (empty in production; one per node
    in the lab, so nodes on one machine never see each other's namespaces).
    bridge_netns: the namespace holding the node's bridges, where the `dv-` ends of router ports
    are enslaved (dvrnet uses it but does not own it).
    external_bridge: the bridge attached to the external segment (every fg-/qg- port plugs there).
    Tenant networks plug into `names.tenant_bridge(network_id)`.
    port_kind: the device kind of router ports plugged into a bridge: "veth" or "macvlan"
    (plan/plug.py, docs/port-kinds.md).
    bridge_mappings: (external network id, bridge) pairs for external networks that live on a
    segment of their own; every other external network plugs into `external_bridge`.
    dvr_mac: this host's own MAC, the source of routed frames leaving it with a `qr-` MAC
    (plan/l2.py); None: derived from the host name.
    uplinks: names (nft wildcards allowed) of bridge ports that lead off the node besides those
    whose kind says so (plan/l2.py `UPLINK_KINDS`), e.g. a physical NIC of a flat network.
    """
    netns_prefix: str = ""
    bridge_netns: str = "dvrnet-bridges"
    external_bridge: str = "br-ex"
    port_kind: str = "veth"
    bridge_mappings: tuple[tuple[str, str], ...] = ()
    dvr_mac: str | None = None
    uplinks: tuple[str, ...] = ()

    def bridge_for(self, network_id: str) -> str:
        """The bridge the fg-/qg- ports of external network NETWORK_ID plug into."""
        for net, bridge in self.bridge_mappings:
            if net == network_id:
                return bridge
        return self.external_bridge


DEFAULT_CONFIG = PlanConfig()

"""Names of namespaces and devices, as Neutron names them so operators recognise them.

- namespaces: `<prefix>fip-<external network id>`, `<prefix>qrouter-<router id>`,
  `<prefix>snat-<router id>`; the prefix is empty in production and per node in the lab;
- devices in them: `fg-`/`qg-`/`qr-`/`sg-` + the first 11 characters of the port id, and
  `rfp-`/`fpr-` + the first 10 characters of the router id (Linux allows 15; Neutron uses 14);
- the bridge-side end of a router port: `dv-` + the first 11 characters of the port id. dvrnet
  owns exactly the `dv-` links in a bridge namespace, never anything else there;
- Open vSwitch ports dvrnet plugs carry `external_ids:dvrnet-owner=<ovs_owner(prefix)>`; ports
  without it are foreign.
"""
from __future__ import annotations

import hashlib

DEV_LEN = 14

FIP_NS, QROUTER_NS, SNAT_NS = "fip-", "qrouter-", "snat-"
NS_PREFIXES = (FIP_NS, QROUTER_NS, SNAT_NS)
AGENT_GW_DEV, ROUTER_GW_DEV, ROUTER_IF_DEV, SNAT_IF_DEV = "fg-", "qg-", "qr-", "sg-"
RTR_TO_FIP_DEV, FIP_TO_RTR_DEV = "rfp-", "fpr-"
BRIDGE_SIDE_DEV = "dv-"
OVS_OWNER_KEY = "dvrnet-owner"
# Prefixes of every link dvrnet owns inside its own namespaces.
OWNED_DEV_PREFIXES = (AGENT_GW_DEV, ROUTER_GW_DEV, ROUTER_IF_DEV, SNAT_IF_DEV, RTR_TO_FIP_DEV, FIP_TO_RTR_DEV)


def fip_ns(prefix: str, network_id: str) -> str:
    return f"{prefix}{FIP_NS}{network_id}"


def qrouter_ns(prefix: str, router_id: str) -> str:
    return f"{prefix}{QROUTER_NS}{router_id}"


def snat_ns(prefix: str, router_id: str) -> str:
    return f"{prefix}{SNAT_NS}{router_id}"


def port_dev(dev_prefix: str, port_id: str) -> str:
    return (dev_prefix + port_id)[:DEV_LEN]


def bridge_side_dev(port_id: str) -> str:
    return (BRIDGE_SIDE_DEV + port_id)[:DEV_LEN]


def rfp_dev(router_id: str) -> str:
    return (RTR_TO_FIP_DEV + router_id)[:DEV_LEN]


def fpr_dev(router_id: str) -> str:
    return (FIP_TO_RTR_DEV + router_id)[:DEV_LEN]


def ovs_owner(prefix: str) -> str:
    """The value of dvrnet's ownership marker on the OVS ports of the agent with this namespace
    prefix ("dvrnet" in production, where the prefix is empty)."""
    return prefix or "dvrnet"


def tenant_bridge(network_id: str) -> str:
    """Bridge of a tenant network on a node (the Linux-bridge agent's naming)."""
    return ("brq" + network_id)[:DEV_LEN]


def local_mac(key: str) -> str:
    """A stable, locally administered unicast MAC for a device dvrnet names itself (the `dv-` ends,
    rfp-/fpr-), so re-creating a device gives it the same address and the node ends byte-identical."""
    h = hashlib.sha256(key.encode()).digest()
    return "02:" + ":".join(f"{b:02x}" for b in h[:5])

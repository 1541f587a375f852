"""What dvrnet owns on a host — decided here and nowhere else.

Invariants:
- Nothing this module does not claim is ever changed or deleted by a plan. `diff()` filters the
  observed state through `Ownership` before computing deletes, and refuses desired state that
  names something dvrnet could not own (a planner bug, never silently "fixed").
- Namespaces: `<prefix>fip-…`, `<prefix>qrouter-…`, `<prefix>snat-…`. The prefix is per node in
  the lab and per test run in the tests, so two runs never see each other's namespaces.
- Links: in dvrnet's namespaces, names with one of `OWNED_DEV_PREFIXES`; in unmanaged namespaces
  (`Namespace.managed=False`, e.g. a bridge namespace) only `dv-` links.
- Addresses and permanent neighbours: those on owned links.
- Routes and rules: protocol `RT_PROTO` (94, "dvrnet"). The reader keeps only those, so an
  observed `Route`/`Rule` is owned by construction.
- nftables: tables named `NFT_TABLE` ("dvrnet") or `NFT_METADATA_TABLE` ("dvrnet_metadata", the
  metadata redirect: plan/metadata.py), owned whole, in any family.
- Sysctls: an allow-list of keys (below); a sysctl is never "deleted", only set when desired.
  IPv6 is owned only as `net.ipv6.conf.<dev|all|default>.disable_ipv6` (dvrnet is IPv4-only and
  turns IPv6 off on what it creates: plan/builder.py).
- Open vSwitch ports: those whose `external_ids:dvrnet-owner` is this agent's marker
  (`names.ovs_owner(prefix)`) and whose name is one dvrnet gives a device (an owned link prefix
  or `dv-`). Every other port is foreign: never changed or deleted, and a desired port whose
  name a foreign port holds is a conflict.
- Transmit checksum offload (`Link.tx_csum`): only where the desired state names it.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from dvrnet.plan.names import BRIDGE_SIDE_DEV, NS_PREFIXES, OVS_OWNER_KEY, OWNED_DEV_PREFIXES, ovs_owner
from dvrnet.plan.numbers import NFT_METADATA_TABLE, NFT_TABLE, RT_PROTO, RT_PROTO_NAME
from dvrnet.plan.state import Namespace, OvsPort

_DEV = r"[A-Za-z0-9_][A-Za-z0-9_.:@-]{0,14}"
_CONF_KEYS = ("proxy_arp", "rp_filter", "send_redirects", "arp_ignore", "arp_announce",
              "src_valid_mark", "forwarding")
SYSCTL_ALLOW = re.compile(
    r"net\.ipv4\.(?:ip_forward|ip_nonlocal_bind"
    rf"|conf\.{_DEV}\.(?:{'|'.join(_CONF_KEYS)})"
    rf"|neigh\.{_DEV}\.proxy_delay)\Z"
    rf"|net\.ipv6\.conf\.{_DEV}\.disable_ipv6\Z")


def owns_route_protocol(proto: int | str | None) -> bool:
    """A route or rule read from the kernel is dvrnet's iff its protocol is RT_PROTO."""
    return proto is not None and str(proto) in (str(RT_PROTO), RT_PROTO_NAME)


def owns_nft_table(family: str, name: str) -> bool:
    return name in (NFT_TABLE, NFT_METADATA_TABLE)


def owns_sysctl(key: str) -> bool:
    return SYSCTL_ALLOW.match(key) is not None


@dataclass(frozen=True)
class Ownership:
    """Ownership predicates for one node (or one test run): `prefix` selects its namespaces."""
    prefix: str = ""

    def owns_namespace(self, name: str) -> bool:
        return any(name.startswith(self.prefix + p) and len(name) > len(self.prefix + p)
                   for p in NS_PREFIXES)

    def owns_link(self, ns: Namespace, link_name: str) -> bool:
        if ns.managed and self.owns_namespace(ns.name):
            return link_name.startswith(OWNED_DEV_PREFIXES + (BRIDGE_SIDE_DEV,))
        return link_name.startswith(BRIDGE_SIDE_DEV)

    def owns_dev_object(self, ns: Namespace, dev: str) -> bool:
        """Addresses and permanent neighbours are owned when their device is."""
        return self.owns_link(ns, dev)

    def owns_ovs_port(self, p: OvsPort) -> bool:
        return (p.external_id(OVS_OWNER_KEY) == ovs_owner(self.prefix)
                and p.name.startswith(OWNED_DEV_PREFIXES + (BRIDGE_SIDE_DEV,)))

    def creates_namespace(self, ns: Namespace) -> bool:
        """dvrnet creates and deletes only managed namespaces that match its prefix."""
        return ns.managed and self.owns_namespace(ns.name)

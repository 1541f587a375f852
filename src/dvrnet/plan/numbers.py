"""Every number dvrnet puts in the kernel, and how it is derived. No state file: all of these
are pure functions of the model, except the link-local /31s, which are derived and then kept
sticky by reading them back from the kernel (see `linklocal.py`).

Routes and rules carry protocol RT_PROTO (registered as "dvrnet" in
/etc/iproute2/rt_protos.d/dvrnet.conf so `ip route`/`ip rule` print the name); that protocol is
how the reconciler knows a route or rule is dvrnet's (`reconcile/ownership.py`).

fip-<ext net> namespace
  main table              only `<fip>/32 via <rfp addr> dev fpr-X onlink`, one per local FIP
  rule FIP_BLOCK_PRIO     `iif fg-X blackhole`: nothing from the external segment transits the node
  rule/table FIP_ONLINK   the fg- connected route, the fpr- /31s, and one `<cidr> dev fg- scope link`
                          per external subnet: FIP->FIP and SNAT->FIP never touch a gateway
  rule FIP_SUBNET_PRIO    `from <subnet cidr> lookup <subnet_table(cidr)>`, one per subnet with a
                          gateway, all at one priority (their selectors are disjoint). The number
                          of rules grows with external subnets only, never with routers or FIPs.
  table subnet_table(c)   `default via <gateway> dev fg-X onlink`; the table number is the integer
                          value of the subnet's network address (203.0.113.0/24 -> 3405803776).
qrouter-<router> namespace
  rule QR_FIP_PRIO        `fwmark FIP_MARK/FIP_MARK lookup QR_FIP_TABLE`: one rule for every FIP;
                          nftables marks packets whose source is a fixed IP with a FIP.
  table QR_FIP_TABLE      `default via <fpr addr> dev rfp-X onlink` (Neutron's table 16)
  rule QR_SNAT_PRIO       `from <tenant cidr> lookup <subnet_table(cidr)>`, one per tenant subnet
                          whose router has a gateway; the table holds `default via <sg- address>`.
snat-<router> namespace
  main                    connected routes of qg-/sg- and on-link routes for every other subnet of
                          the external network (S12: SNAT->FIP goes straight to the FIP's node);
                          no default route
  rule SNAT_SRC_PRIO      `from <qg address>/32 lookup <subnet_table(subnet)>` per qg address whose
                          subnet has a gateway: traffic sourced from each address leaves by its own
                          subnet's gateway
  rule SNAT_DEFAULT_PRIO  `lookup <subnet_table(subnet of the SNAT address)>`: forwarded tenant
                          traffic (routed before it is source-NATed) leaves by the gateway of the
                          address it will be NATed to
  table subnet_table(c)   `default via <gateway> dev qg-X onlink`
metadata (plan/metadata.py; when the agent knows neutron-metadata-agent's socket)
  qrouter-: table `ip dvrnet_metadata` (NFT_METADATA_TABLE): TCP from qr- ports to
        METADATA_ADDRESS:80 is redirected to the proxy's port (9697 by default, as upstream's),
        which accepts only such redirected connections; nothing to METADATA_ADDRESS is forwarded
routed mode (external network tagged dvrnet:routed; plan/routed.py)
  fip-: main as above (plus migration blackholes, plan/timed.py); FIP_BLOCK_PRIO and
        FIP_ONLINK_PRIO as above, the on-link table holding only the private (service) subnets
        and the fpr- /31s; rule/table ROUTED_DEFAULT_* `default via <ToR> dev fg-X onlink`
  snat-: main holds the private subnet's connected route and `<SNAT address>/32 dev qg-X`
        (the route BIRD announces); rule FIP_BLOCK_PRIO `iif qg-X blackhole`; rule/table
        ROUTED_DEFAULT_* `default via <ToR> dev qg-X onlink`
"""
from __future__ import annotations

from ipaddress import IPv4Network

MAIN_TABLE_ID = 254
RT_PROTO = 94
RT_PROTO_NAME = "dvrnet"

FIP_BLOCK_PRIO = 40000
FIP_ONLINK_PRIO = 40005
FIP_ONLINK_TABLE = 40005
FIP_SUBNET_PRIO = 40010

QR_FIP_PRIO = 32768          # after main (32766): east-west and hairpin stay in main
QR_FIP_TABLE = 16
FIP_MARK = 0x10
QR_SNAT_PRIO = 40000

SNAT_SRC_PRIO = 40010
SNAT_DEFAULT_PRIO = 40020

# routed mode (S6; plan/routed.py): the namespace's default route, via the ToR, looked up after
# `iif fg-/qg- blackhole` and the on-link table, so nothing from the segment transits the node
ROUTED_DEFAULT_PRIO = 40010
ROUTED_DEFAULT_TABLE = 40010

LINK_LOCAL_CIDR = IPv4Network("169.254.64.0/18")   # 8192 /31 pairs: even on rfp-, odd on fpr-

NFT_TABLE = "dvrnet"         # the nftables table dvrnet owns whole in each of its namespaces
NFT_METADATA_TABLE = "dvrnet_metadata"     # qrouter-: the metadata redirect, a table of its own
METADATA_ADDRESS = "169.254.169.254"


def subnet_table(cidr: IPv4Network) -> int:
    """Table number of a subnet: the integer of its network address (never 0, 253-255, for /30+
    subnets of real address space)."""
    n = int(cidr.network_address)
    if n < 256:
        raise ValueError(f"{cidr}: no table number can be derived from a subnet in 0.0.0.0/24")
    return n

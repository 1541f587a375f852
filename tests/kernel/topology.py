"""A small but realistic fip-/qrouter- pair as desired state, built by hand for kernel tests.

bridge namespace `<p>br` (unmanaged; the test creates it with bridges brext and brint), a fip
namespace with fg- (veth into brext) and fpr- (veth to the qrouter's rfp-), a qrouter with qr-
(veth into brint); routes in main, 16, 40005 and per-subnet tables; the three fip rule kinds
plus the qrouter fwmark and SNAT rules; neighbours; sysctls; an nft table with two maps.
"""
from __future__ import annotations

import subprocess

from dvrnet.plan.state import Address, HostState, Link, Namespace, Neighbour, NftChain, NftMap, NftTable, Route, Rule

T203, T198, T10 = 3405803776, 3325256704, 167772160


def names(p: str) -> tuple[str, str, str]:
    return f"{p}fip-ext1", f"{p}qrouter-r1", f"{p}br"


def make_bridge_ns(p: str) -> str:
    br = names(p)[2]
    for cmd in (["ip", "netns", "add", br],
                ["ip", "-n", br, "link", "add", "brext", "type", "bridge"],
                ["ip", "-n", br, "link", "add", "brint", "type", "bridge"],
                ["ip", "-n", br, "link", "set", "brext", "up"],
                ["ip", "-n", br, "link", "set", "brint", "up"]):
        subprocess.run(cmd, check=True, capture_output=True)
    return br


def desired(p: str, fips: dict[str, str] | None = None, gw203: str = "203.0.113.1",
            fg_kind: str = "veth") -> HostState:
    fip, qr, br = names(p)
    fips = {"203.0.113.50": "10.0.0.5", "198.51.100.60": "10.0.0.6"} if fips is None else fips
    fip_ns = Namespace(
        fip,
        links={"fg-p1": Link("fg-p1", fg_kind, br if fg_kind == "veth" else None,
                             "dv-p1" if fg_kind == "veth" else None, mtu=1500),
               "fpr-r1": Link("fpr-r1", "veth", qr, "rfp-r1", mac="fa:16:3e:aa:00:01")},
        addresses=frozenset({Address("fg-p1", "100.64.0.11/24"), Address("fpr-r1", "169.254.64.1/31")}),
        routes=frozenset({Route(254, f"{f}/32", via="169.254.64.0", dev="fpr-r1", onlink=True) for f in fips}
                         | {Route(40005, "100.64.0.0/24", dev="fg-p1", scope="link", src="100.64.0.11"),
                            Route(40005, "169.254.64.0/31", dev="fpr-r1", scope="link", src="169.254.64.1"),
                            Route(40005, "203.0.113.0/24", dev="fg-p1", scope="link"),
                            Route(40005, "198.51.100.0/24", dev="fg-p1", scope="link"),
                            Route(40005, "10.66.0.0/16", type="blackhole"),
                            Route(T203, "default", via=gw203, dev="fg-p1", onlink=True),
                            Route(T198, "default", via="198.51.100.1", dev="fg-p1", onlink=True)}),
        rules=frozenset({Rule(40000, "blackhole", iif="fg-p1"),
                         Rule(40005, "lookup", 40005),
                         Rule(40010, "lookup", T203, src="203.0.113.0/24"),
                         Rule(40010, "lookup", T198, src="198.51.100.0/24")}),
        sysctls={"net.ipv4.ip_forward": "1", "net.ipv4.conf.fg-p1.proxy_arp": "1",
                 "net.ipv4.neigh.fg-p1.proxy_delay": "0", "net.ipv4.conf.all.send_redirects": "0"},
    )
    qr_ns = Namespace(
        qr,
        links={"rfp-r1": Link("rfp-r1", "veth", fip, "fpr-r1", mac="fa:16:3e:aa:00:00"),
               "qr-p2": Link("qr-p2", "veth", br, "dv-p2", mac="fa:16:3e:00:00:01")},
        addresses=frozenset({Address("rfp-r1", "169.254.64.0/31"), Address("qr-p2", "10.0.0.1/24", False)}),
        routes=frozenset({Route(16, "default", via="169.254.64.1", dev="rfp-r1", onlink=True),
                          Route(T10, "default", via="10.0.0.3", dev="qr-p2")}),
        rules=frozenset({Rule(32768, "lookup", 16, fwmark=0x10, fwmask=0x10),
                         Rule(40000, "lookup", T10, src="10.0.0.0/24")}),
        neighbours=frozenset({Neighbour("qr-p2", "10.0.0.12", "fa:16:3e:00:00:12")}),
        sysctls={"net.ipv4.ip_forward": "1", "net.ipv4.conf.all.rp_filter": "0",
                 "net.ipv4.conf.qr-p2.rp_filter": "1", "net.ipv4.conf.rfp-r1.send_redirects": "0"},
        nft={("ip", "dvrnet"): NftTable("ip", "dvrnet", chains=(
            NftChain("pre_mangle", "filter", "prerouting", -150,
                     ("ip saddr @fixed2fip meta mark set meta mark or 0x10",)),
            NftChain("pre_nat", "nat", "prerouting", -100,
                     ('iifname "rfp-r1" dnat to ip daddr map @fip2fixed',)),
            NftChain("post_nat", "nat", "postrouting", 100,
                     ('oifname "rfp-r1" snat to ip saddr map @fixed2fip',))),
            maps=(NftMap("fip2fixed", "ipv4_addr", "ipv4_addr", frozenset(fips.items())),
                  NftMap("fixed2fip", "ipv4_addr", "ipv4_addr",
                         frozenset((b, a) for a, b in fips.items())))),
        },
    )
    br_links = {"dv-p2": Link("dv-p2", "veth", qr, "qr-p2", master="brint")}
    if fg_kind == "veth":
        br_links["dv-p1"] = Link("dv-p1", "veth", fip, "fg-p1", mtu=1500, master="brext")
    br_ns = Namespace(br, links=br_links, managed=False)
    return HostState("test", {fip: fip_ns, qr: qr_ns, br: br_ns})

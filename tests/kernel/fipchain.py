"""A vm - qrouter - ext - inet chain of namespaces for FIP data-plane tests (root), with the planner's
own dvrnet table applied by the reconciler.

vm    10.0.0.5 (A) and 10.0.0.6 (B) on vm0, default via 10.0.0.1
qr    qr0 10.0.0.1/24, rfp0 169.254.64.0/31; table 16 default via 169.254.64.1, fwmark 0x10 rule
ext   fpr0 169.254.64.1/31, 192.0.2.10 on lo, 100.64.0.0/10 back via the qrouter (so FIP->FIP turns
      here, as in a fip- namespace); forwards to inet over a link with MTU 1300
inet  192.0.2.20 on lo, behind ext (10.255.0.2/30 - 10.255.0.1/30, MTU 1300)
FIPs: 100.64.0.5 -> A, 100.64.0.6 -> B (FIPS).
"""
from __future__ import annotations

import subprocess

from dvrnet.kernel import Reconciler
from dvrnet.plan.config import PlanConfig
from dvrnet.plan.numbers import NFT_TABLE
from dvrnet.plan.qrouter import fip_nat_table
from dvrnet.plan.state import HostState, Namespace

A, B, DST, FAR = "10.0.0.5", "10.0.0.6", "192.0.2.10", "192.0.2.20"
FIP_A, FIP_B = "100.64.0.5", "100.64.0.6"
FIPS = [(FIP_A, A), (FIP_B, B)]


def sh(*args: str, stdin: str | None = None) -> str:
    return subprocess.run(args, input=stdin, check=True, capture_output=True, text=True).stdout


def build(p: str) -> tuple[str, str, str, str]:
    vm, qr, ext, inet = p + "vm", p + "qr", p + "ext", p + "inet"
    for n in (vm, qr, ext, inet):
        sh("ip", "netns", "add", n)
    sh("ip", "-n", vm, "link", "add", "vm0", "type", "veth", "peer", "name", "qr0", "netns", qr)
    sh("ip", "-n", qr, "link", "add", "rfp0", "type", "veth", "peer", "name", "fpr0", "netns", ext)
    sh("ip", "-n", ext, "link", "add", "up0", "mtu", "1300", "type", "veth", "peer", "name", "dn0", "netns", inet)
    sh("ip", "-n", vm, "-batch", "-", stdin=f"link set lo up\nlink set vm0 up\naddress add {A}/24 dev vm0\n"
       f"address add {B}/24 dev vm0\nroute add default via 10.0.0.1\n")
    sh("ip", "-n", ext, "-batch", "-", stdin="link set lo up\nlink set fpr0 up\nlink set up0 up\n"
       f"address add 169.254.64.1/31 dev fpr0\naddress add {DST}/32 dev lo\naddress add 10.255.0.1/30 dev up0\n"
       f"route add 100.64.0.0/10 via 169.254.64.0 dev fpr0 onlink\nroute add {FAR}/32 via 10.255.0.2\n")
    sh("ip", "-n", inet, "-batch", "-", stdin="link set lo up\nlink set dn0 mtu 1300\nlink set dn0 up\n"
       f"address add {FAR}/32 dev lo\naddress add 10.255.0.2/30 dev dn0\nroute add default via 10.255.0.1\n")
    sh("ip", "-n", qr, "-batch", "-", stdin="link set lo up\nlink set qr0 up\nlink set rfp0 up\n"
       "address add 10.0.0.1/24 dev qr0\naddress add 169.254.64.0/31 dev rfp0\n"
       "route add default via 169.254.64.1 dev rfp0 onlink table 16\n"
       "rule add priority 32768 fwmark 0x10/0x10 lookup 16\n")
    for ns in (qr, ext):
        sh("ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv4.ip_forward=1")
    sh("ip", "netns", "exec", qr, "sysctl", "-qw", "net.ipv4.conf.qr0.rp_filter=1")
    return vm, qr, ext, inet


def table(cfg: PlanConfig, fips=FIPS, overrides: dict[str, int | None] | None = None):
    return fip_nat_table("rfp0", list(fips), [(ip, (overrides or {}).get(ip)) for ip in (A, B)], cfg)


def apply(p: str, qr: str, cfg: PlanConfig, fips=FIPS, overrides=None, r: Reconciler | None = None) -> Reconciler:
    r = r or Reconciler(prefix=p)
    desired = HostState("h", {qr: Namespace(qr, nft={("ip", NFT_TABLE): table(cfg, fips, overrides)}, managed=False)})
    res = r.sync(desired)
    assert res.ok, str(res)
    return r


def conntrack_lines(ns: str) -> list[str]:
    return subprocess.run(["ip", "netns", "exec", ns, "cat", "/proc/net/nf_conntrack"], capture_output=True,
                          text=True, check=False).stdout.splitlines()

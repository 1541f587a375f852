"""Data plane: per-packet cost through a qrouter- namespace holding N FIPs.

One chain of three namespaces per configuration (unique prefix): `vm` (10.0.0.5/24, default via
10.0.0.1) — `qr` (qr0 10.0.0.1/24, rfp0 169.254.64.0/31) — `ext` (fpr0 169.254.64.1/31,
192.0.2.10/32 on lo, 100.64.0.0/10 and 10.0.0.0/24 back via the qrouter). The VM's FIP is
100.64.0.5; the other N-1 FIPs are 100.80.x.y ↔ 10.128.x.y.

Configurations:
- floor: no FIPs: `default via rfp` in main, no rules, no nftables;
- dvrnet N: the planner's own `fip_nat_table` (mark chain + DNAT/SNAT maps with N entries), ONE
  `fwmark 0x10/0x10 lookup 16` rule, `default via rfp` in table 16 (main has no default);
- neutron N: one `from <fixed> lookup 16` rule per FIP (N rules, the tested VM's last), the same
  NAT maps without the mark chain.

Two measures, runs interleaved over configurations, medians reported (the host is noisy):
- `ip route get` loops: one `ip -n qr -batch -` of L lines
  `route get 192.0.2.10 from 10.0.0.5 iif qr0 [mark 0x10]` (the mark nft would set), µs/lookup;
- real traffic: `ping -f -q -w 1 192.0.2.10` from `vm`, round trips per second.
"""
from __future__ import annotations

import re
import statistics
import subprocess
import time
from dataclasses import dataclass, field
from ipaddress import IPv4Address

from dvrnet.kernel import netns
from dvrnet.plan.numbers import FIP_MARK, QR_FIP_PRIO, QR_FIP_TABLE
from dvrnet.plan.qrouter import fip_nat_table
from dvrnet.plan.state import NftTable
from dvrnet.reconcile.nft_text import table_script

VM_IP, VM_FIP, DST = "10.0.0.5", "100.64.0.5", "192.0.2.10"
NEUTRON_PRIO = 32800


def _sh(argv: list[str], stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    p = subprocess.run(argv, input=stdin, capture_output=True, text=True, check=False)
    if check and p.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {p.stderr.strip()[:400]}")
    return p


def _pairs(n: int) -> list[tuple[str, str]]:
    """(fip, fixed) for N FIPs, the VM's first."""
    b_f, b_x = int(IPv4Address("100.80.0.0")), int(IPv4Address("10.128.0.0"))
    return [(VM_FIP, VM_IP)] + [(str(IPv4Address(b_f + i)), str(IPv4Address(b_x + i))) for i in range(n - 1)]


@dataclass
class Config:
    name: str            # "floor" | "dvrnet" | "neutron"
    n: int
    prefix: str

    @property
    def label(self) -> str:
        return "floor (no FIPs)" if self.name == "floor" else f"{self.name} N={self.n:,}"

    def ns(self, what: str) -> str:
        return f"{self.prefix}{what}"


def build(c: Config) -> None:
    vm, qr, ext = c.ns("vm"), c.ns("qr"), c.ns("ext")
    for n in (vm, qr, ext):
        _sh(["ip", "netns", "add", n])
    _sh(["ip", "-n", vm, "link", "add", "vm0", "type", "veth", "peer", "name", "qr0", "netns", qr])
    _sh(["ip", "-n", qr, "link", "add", "rfp0", "type", "veth", "peer", "name", "fpr0", "netns", ext])
    _sh(["ip", "-n", vm, "-batch", "-"], f"link set lo up\nlink set vm0 up\naddress add {VM_IP}/24 dev vm0\n"
        "route add default via 10.0.0.1\n")
    _sh(["ip", "-n", ext, "-batch", "-"], "link set lo up\nlink set fpr0 up\n"
        f"address add 169.254.64.1/31 dev fpr0\naddress add {DST}/32 dev lo\n"
        "route add 100.64.0.0/10 via 169.254.64.0 dev fpr0 onlink\n"
        "route add 10.0.0.0/24 via 169.254.64.0 dev fpr0 onlink\n")
    lines = ["link set lo up", "link set qr0 up", "link set rfp0 up", "address add 10.0.0.1/24 dev qr0",
             "address add 169.254.64.0/31 dev rfp0"]
    if c.name == "floor":
        lines.append("route add default via 169.254.64.1 dev rfp0 onlink")
    else:
        lines.append(f"route add default via 169.254.64.1 dev rfp0 onlink table {QR_FIP_TABLE}")
    if c.name == "dvrnet":
        lines.append(f"rule add priority {QR_FIP_PRIO} fwmark {FIP_MARK:#x}/{FIP_MARK:#x} lookup {QR_FIP_TABLE}")
    _sh(["ip", "-n", qr, "-batch", "-"], "\n".join(lines) + "\n")
    if c.name == "neutron":
        rules = [f"rule add priority {NEUTRON_PRIO + i} from {fixed} lookup {QR_FIP_TABLE}"
                 for i, (_, fixed) in enumerate(_pairs(c.n)[1:])]
        rules.append(f"rule add priority {NEUTRON_PRIO + c.n} from {VM_IP} lookup {QR_FIP_TABLE}")  # last
        _sh(["ip", "-n", qr, "-batch", "-"], "\n".join(rules) + "\n")
    if c.name != "floor":
        t = fip_nat_table("rfp0", _pairs(c.n))
        if c.name == "neutron":
            t = NftTable(t.family, t.name, tuple(ch for ch in t.chains if ch.type == "nat"), t.maps)
        _sh(netns.nsenter(qr) + ["nft", "-f", "-"], table_script(t, replace=False))

    def sysctls() -> None:
        for k, v in (("net/ipv4/ip_forward", "1"), ("net/ipv4/conf/all/rp_filter", "0"),
                     ("net/ipv4/conf/qr0/rp_filter", "1"), ("net/ipv4/conf/rfp0/rp_filter", "0")):
            with open(f"/proc/sys/{k}", "w") as f:
                f.write(v)
    netns.run_in(qr, sysctls)


def reachable(c: Config) -> bool:
    return _sh(["ip", "netns", "exec", c.ns("vm"), "ping", "-c", "1", "-W", "1", DST], check=False).returncode == 0


def route_get_us(c: Config, lookups: int) -> float:
    mark = f" mark {FIP_MARK:#x}" if c.name == "dvrnet" else ""
    text = f"route get {DST} from {VM_IP} iif qr0{mark}\n" * lookups
    t = time.perf_counter()
    _sh(["ip", "-n", c.ns("qr"), "-batch", "-"], text)
    return (time.perf_counter() - t) / lookups * 1e6


_PING = re.compile(r"(\d+) packets transmitted, (\d+) received.*time (\d+)ms")


def ping_pps(c: Config, seconds: int = 1) -> float:
    p = _sh(["ip", "netns", "exec", c.ns("vm"), "ping", "-f", "-q", "-w", str(seconds), DST], check=False)
    m = _PING.search(p.stdout)
    if not m or int(m.group(3)) == 0:
        return 0.0
    return int(m.group(2)) / (int(m.group(3)) / 1000)


@dataclass
class DataRow:
    label: str
    name: str
    n: int
    ok: bool
    route_get: list[float] = field(default_factory=list)     # µs per lookup, one per round
    pps: list[float] = field(default_factory=list)

    @property
    def route_get_med(self) -> float:
        return statistics.median(self.route_get) if self.route_get else float("nan")

    @property
    def pps_med(self) -> float:
        return statistics.median(self.pps) if self.pps else float("nan")


def cleanup(prefix: str) -> None:
    for n in netns.list_names():
        if n.startswith(prefix):
            netns.delete(n)


def run(top: str, sizes: tuple[int, ...], rounds: int, lookups: int, progress=print, tick=None) -> list[DataRow]:
    """TICK (progress): called after each round."""
    configs = [Config("floor", 0, f"{top}p0-")]
    for i, n in enumerate(sizes):
        configs += [Config("dvrnet", n, f"{top}p{i}d-"), Config("neutron", n, f"{top}p{i}n-")]
    rows = []
    try:
        for c in configs:
            build(c)
            rows.append(DataRow(c.label, c.name, c.n, reachable(c)))
        progress(f"  data plane: {len(configs)} configurations built, "
                 f"{sum(r.ok for r in rows)} reachable")
        for k in range(rounds):
            order = configs[k % len(configs):] + configs[:k % len(configs)]      # rotate: interleaved
            for c in order:
                row = rows[configs.index(c)]
                if row.ok:
                    row.route_get.append(route_get_us(c, lookups))
                    row.pps.append(ping_pps(c))
            if tick is not None:
                tick()
            else:
                progress(f"  data plane: round {k + 1}/{rounds} done")
    finally:
        cleanup(top + "p")
    return rows

"""Data plane: per-packet cost and real flows through a qrouter- namespace holding N FIPs.

One chain of three namespaces per configuration (unique prefix): `vm` (10.0.0.5/24, default via
10.0.0.1) — `qr` (qr0 10.0.0.1/24, rfp0 169.254.64.0/31) — `ext` (fpr0 169.254.64.1/31,
192.0.2.10/32 on lo, 100.64.0.0/10 and 10.0.0.0/24 back via the qrouter). The VM's FIP is
100.64.0.5; the other N-1 FIPs are 100.80.x.y ↔ 10.128.x.y.

Configurations:
- direct: no router at all, `vm` and `ext` on one veth pair: the generators' own rate;
- floor: no FIPs: `default via rfp` in main, no rules, no nftables (no conntrack either);
- dvrnet N: the planner's own table (`fip_nat_table` with the default connection limits for the N
  fixed IPs: mark chain + DNAT/SNAT maps with N entries + conn_limit), ONE `fwmark 0x10/0x10 lookup
  16` rule, `default via rfp` in table 16 (main has no default);
- stateless N: the same table with `stateless_fips` (rewrites from the same maps, notrack);
- neutron N: Neutron's layout as its L3 agent writes it (notes/neutron-dvr-reference.md §2.2-2.3):
  one `from <fixed> lookup 16` rule per FIP and per FIP an iptables DNAT rule (`-d FIP -i rfp -j
  DNAT`) and SNAT rule (`-s FIXED -j SNAT --random-fully`) in its wrapped nat chains, loaded with
  `iptables-restore` (iptables-nft on Debian 12: each rule is an nft rule, evaluated in order);
  the tested VM's rule and NAT rules come last.

Measures, runs interleaved over configurations (rotated order), medians reported:
- `ip route get` loops: one `ip -n qr -batch -` of L lines (µs/lookup), and `ping -f -q -w 1`
  from `vm` (round trips/s) — cost per packet of the FIB and the NAT;
- real flows (bench/flows.py): TCP throughput vm -> internet (iperf3, through the FIP's SNAT),
  small-packet UDP vm -> internet (18-byte payloads, dvrflow), new TCP connections per second
  internet -> FIP (DNAT; dvrflow connect/close, 16 in flight). The `direct` configuration's rate
  of the same round is the generators' own: a row within 10% of it is marked limited by the
  generator (its figure is then a lower bound of the path, not a comparison).
"""
from __future__ import annotations

import math
import re
import statistics
import subprocess
import time
from dataclasses import dataclass, field
from ipaddress import IPv4Address

from dvrnet.kernel import netns
from dvrnet.plan.config import PlanConfig
from dvrnet.plan.numbers import FIP_MARK, QR_FIP_PRIO, QR_FIP_TABLE
from dvrnet.plan.qrouter import fip_nat_table
from dvrnet.reconcile.nft_text import table_script

from . import flows

VM_IP, VM_FIP, DST = "10.0.0.5", "100.64.0.5", "192.0.2.10"
NEUTRON_PRIO = 32800
GEN_LIMITED = 0.9        # a row at >= 90% of the generator's own rate is limited by the generator


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
    name: str            # "direct" | "floor" | "dvrnet" | "stateless" | "neutron"
    n: int
    prefix: str

    @property
    def label(self) -> str:
        if self.name == "direct":
            return "generator alone (one veth)"
        return "floor (no FIPs)" if self.name == "floor" else f"{self.name} N={self.n:,}"

    @property
    def target(self) -> str:
        """Where the internet side connects to: the VM's FIP, or its fixed IP without one."""
        return VM_IP if self.name in ("direct", "floor") else VM_FIP

    def ns(self, what: str) -> str:
        return f"{self.prefix}{what}"


def neutron_iptables(rfp: str, pairs: list[tuple[str, str]]) -> str:
    """The nat table Neutron's L3 agent writes in a DVR qrouter- namespace for PAIRS (fip, fixed):
    its wrapped chains, the per-FIP DNAT and SNAT rules (the tested VM's, first in PAIRS, last)."""
    w = "neutron-l3-agent"
    order = pairs[1:] + pairs[:1]
    lines = ["*nat", ":PREROUTING ACCEPT [0:0]", ":INPUT ACCEPT [0:0]", ":OUTPUT ACCEPT [0:0]",
             ":POSTROUTING ACCEPT [0:0]", f":{w}-PREROUTING - [0:0]", f":{w}-OUTPUT - [0:0]",
             f":{w}-POSTROUTING - [0:0]", f":{w}-float-snat - [0:0]", f":{w}-snat - [0:0]",
             ":neutron-postrouting-bottom - [0:0]",
             f"-A PREROUTING -j {w}-PREROUTING", f"-A OUTPUT -j {w}-OUTPUT", f"-A POSTROUTING -j {w}-POSTROUTING",
             "-A POSTROUTING -j neutron-postrouting-bottom",
             (f'-A neutron-postrouting-bottom -m comment --comment "Perform source NAT on outgoing traffic." '
              f"-j {w}-snat"),
             f"-A {w}-POSTROUTING ! -o {rfp} -m conntrack ! --ctstate DNAT -j ACCEPT",
             f"-A {w}-snat -j {w}-float-snat"]
    lines += [f"-A {w}-PREROUTING -d {fip}/32 -i {rfp} -j DNAT --to-destination {fixed}" for fip, fixed in order]
    lines += [f"-A {w}-float-snat -s {fixed}/32 -j SNAT --to-source {fip} --random-fully" for fip, fixed in order]
    return "\n".join(lines + ["COMMIT", ""])


def build(c: Config) -> None:
    vm, qr, ext = c.ns("vm"), c.ns("qr"), c.ns("ext")
    if c.name == "direct":
        for n in (vm, ext):
            _sh(["ip", "netns", "add", n])
        _sh(["ip", "-n", vm, "link", "add", "vm0", "type", "veth", "peer", "name", "fpr0", "netns", ext])
        _sh(["ip", "-n", vm, "-batch", "-"], f"link set lo up\nlink set vm0 up\naddress add {VM_IP}/24 dev vm0\n"
            "route add default dev vm0\n")
        _sh(["ip", "-n", ext, "-batch", "-"], f"link set lo up\nlink set fpr0 up\naddress add {DST}/32 dev lo\n"
            "route add 10.0.0.0/24 dev fpr0\n")
        return
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
    if c.name in ("dvrnet", "stateless"):
        lines.append(f"rule add priority {QR_FIP_PRIO} fwmark {FIP_MARK:#x}/{FIP_MARK:#x} lookup {QR_FIP_TABLE}")
    _sh(["ip", "-n", qr, "-batch", "-"], "\n".join(lines) + "\n")
    pairs = _pairs(c.n) if c.n else []
    if c.name == "neutron":
        rules = [f"rule add priority {NEUTRON_PRIO + i} from {fixed} lookup {QR_FIP_TABLE}"
                 for i, (_, fixed) in enumerate(pairs[1:])]
        rules.append(f"rule add priority {NEUTRON_PRIO + c.n} from {VM_IP} lookup {QR_FIP_TABLE}")  # last
        _sh(["ip", "-n", qr, "-batch", "-"], "\n".join(rules) + "\n")
        _sh(netns.nsenter(qr) + ["iptables-restore"], neutron_iptables("rfp0", pairs))
    if c.name in ("dvrnet", "stateless"):
        cfg = PlanConfig(stateless_fips=c.name == "stateless")
        t = fip_nat_table("rfp0", pairs, [(fixed, None) for _, fixed in pairs], cfg)
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
    if c.name == "direct":
        return float("nan")
    mark = f" mark {FIP_MARK:#x}" if c.name in ("dvrnet", "stateless") else ""
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


def _med(xs: list[float]) -> float:
    xs = [x for x in xs if not math.isnan(x)]
    return statistics.median(xs) if xs else float("nan")


@dataclass
class DataRow:
    label: str
    name: str
    n: int
    ok: bool
    route_get: list[float] = field(default_factory=list)     # µs per lookup, one per round
    pps: list[float] = field(default_factory=list)
    tcp: list[float] = field(default_factory=list)           # bits/s
    udp: list[float] = field(default_factory=list)           # packets/s received
    crr: list[float] = field(default_factory=list)           # connections/s
    errors: list[str] = field(default_factory=list)

    @property
    def route_get_med(self) -> float:
        return _med(self.route_get)

    @property
    def pps_med(self) -> float:
        return _med(self.pps)

    def med(self, what: str) -> float:
        return _med(getattr(self, what))


def cleanup(prefix: str) -> None:
    for n in netns.list_names():
        if n.startswith(prefix):
            netns.delete(n)


def _flow(what: str, gen: str, c: Config, seconds: float) -> float:
    if what == "tcp":
        return flows.tcp_bps(c.ns("vm"), c.ns("ext"), VM_IP, DST, seconds)
    if what == "udp":
        return flows.udp_pps(gen, c.ns("vm"), c.ns("ext"), VM_IP, DST, seconds)
    return flows.crr_cps(gen, c.ns("ext"), DST, c.target, seconds)


def run(top: str, sizes: tuple[int, ...], rounds: int, lookups: int, progress=print, tick=None,
        flow_seconds: float = 1.5) -> list[DataRow]:
    """TICK (progress): called after each round; FLOW_SECONDS: length of each real-flow measure."""
    configs = [Config("direct", 0, f"{top}pg-"), Config("floor", 0, f"{top}p0-")]
    for i, n in enumerate(sizes):
        configs += [Config("dvrnet", n, f"{top}p{i}d-"), Config("stateless", n, f"{top}p{i}s-"),
                    Config("neutron", n, f"{top}p{i}n-")]
    rows = []
    gen = flows.generator()
    servers: list[subprocess.Popen] = []
    try:
        for c in configs:
            build(c)
            servers.append(flows.start_crr_server(gen, c.ns("vm"), VM_IP))
            rows.append(DataRow(c.label, c.name, c.n, reachable(c)))
        progress(f"  data plane: {len(configs)} configurations built, "
                 f"{sum(r.ok for r in rows)} reachable")
        for k in range(rounds):
            order = configs[k % len(configs):] + configs[:k % len(configs)]      # rotate: interleaved
            for c in order:
                row = rows[configs.index(c)]
                if not row.ok:
                    continue
                row.route_get.append(route_get_us(c, lookups))
                row.pps.append(ping_pps(c))
                for what in ("tcp", "udp", "crr"):
                    try:
                        getattr(row, what).append(_flow(what, gen, c, flow_seconds))
                    except (RuntimeError, ValueError, KeyError, subprocess.TimeoutExpired) as e:
                        getattr(row, what).append(float("nan"))
                        row.errors.append(f"{what}: {e}"[:200])
            if tick is not None:
                tick()
            else:
                progress(f"  data plane: round {k + 1}/{rounds} done")
    finally:
        for p in servers:
            flows.stop(p)
        cleanup(top + "p")
    return rows


def generator_limited(row: DataRow, direct: DataRow | None, what: str) -> bool:
    """True when ROW's median of WHAT is within 10% of the generators' own (the `direct` row)."""
    if direct is None or row is direct:
        return False
    g, v = direct.med(what), row.med(what)
    return not math.isnan(g) and not math.isnan(v) and v >= GEN_LIMITED * g

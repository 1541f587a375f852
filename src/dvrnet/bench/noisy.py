"""Noisy neighbour: one VM opens and holds many established UDP flows (replied, then refreshed, so
conntrack marks them assured and early drop cannot evict them) while another VM behind the same
router gets a new TCP connection and a ping every 10 ms. Counted: lost pings and failed
connections of the second VM; flows the first VM holds; its drops by the limits.

Namespaces (unique prefix): `noisy` (10.0.1.7/24, FIP 100.64.0.7) and `vm` (10.0.0.5/24, FIP
100.64.0.5), each on its own qr- port of one qrouter `qr` with the planner's own table (default
connection limits derived from this kernel's nf_conntrack_max, or none); `ext` is the internet side:
192.0.2.10 (probe server) and 192.0.2.11.. (the flows' destinations, answered by one raw-socket
reflector with conntrack off there: the internet side is not what is measured).
"""
from __future__ import annotations

import re
import subprocess
import time
from dataclasses import dataclass

from dvrnet.kernel import netns
from dvrnet.kernel.connlimit import conntrack_max, usage
from dvrnet.plan.config import PlanConfig
from dvrnet.plan.numbers import FIP_MARK, QR_FIP_PRIO, QR_FIP_TABLE
from dvrnet.plan.qrouter import fip_nat_table
from dvrnet.reconcile.nft_text import table_script

from . import flows

VICTIM, NOISY, DST = "10.0.0.5", "10.0.1.7", "192.0.2.10"
PAIRS = [("100.64.0.5", VICTIM), ("100.64.0.7", NOISY)]
PORT0 = 10000
PER_DST = 50000


@dataclass
class NoisyResult:
    label: str
    flows: int               # flows the noisy VM tried to hold
    held: int                # of those, replied (established through the router)
    conntrack: int           # entries in the qrouter's table while probing
    noisy_drops: int         # new connections of the noisy VM dropped by its limit
    pings: int
    lost: int
    connects: int
    failed: int
    worst_connect_ms: float
    limits: str
    error: str = ""


def _sh(argv: list[str], stdin: str | None = None) -> None:
    p = subprocess.run(argv, input=stdin, capture_output=True, text=True, check=False)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {p.stderr.strip()[:300]}")


def build(p: str, cfg: PlanConfig, ndst: int) -> tuple[str, str, str, str]:
    vm, noisy, qr, ext = p + "vm", p + "noisy", p + "qr", p + "ext"
    for n in (vm, noisy, qr, ext):
        _sh(["ip", "netns", "add", n])
    _sh(["ip", "-n", vm, "link", "add", "vm0", "type", "veth", "peer", "name", "qr0", "netns", qr])
    _sh(["ip", "-n", noisy, "link", "add", "vm0", "type", "veth", "peer", "name", "qr1", "netns", qr])
    _sh(["ip", "-n", qr, "link", "add", "rfp0", "type", "veth", "peer", "name", "fpr0", "netns", ext])
    for ns, ip, gw in ((vm, VICTIM, "10.0.0.1"), (noisy, NOISY, "10.0.1.1")):
        _sh(["ip", "-n", ns, "-batch", "-"], f"link set lo up\nlink set vm0 up\naddress add {ip}/24 dev vm0\n"
            f"route add default via {gw}\n")
    dsts = "".join(f"address add 192.0.2.{11 + i}/32 dev lo\n" for i in range(ndst))
    _sh(["ip", "-n", ext, "-batch", "-"], "link set lo up\nlink set fpr0 up\naddress add 169.254.64.1/31 dev fpr0\n"
        f"address add {DST}/32 dev lo\n{dsts}route add 100.64.0.0/10 via 169.254.64.0 dev fpr0 onlink\n")
    _sh(["ip", "-n", qr, "-batch", "-"], "link set lo up\nlink set qr0 up\nlink set qr1 up\nlink set rfp0 up\n"
        "address add 10.0.0.1/24 dev qr0\naddress add 10.0.1.1/24 dev qr1\naddress add 169.254.64.0/31 dev rfp0\n"
        f"route add default via 169.254.64.1 dev rfp0 onlink table {QR_FIP_TABLE}\n"
        f"rule add priority {QR_FIP_PRIO} fwmark {FIP_MARK:#x}/{FIP_MARK:#x} lookup {QR_FIP_TABLE}\n")
    t = fip_nat_table("rfp0", PAIRS, [(VICTIM, None), (NOISY, None)], cfg)
    _sh(netns.nsenter(qr) + ["nft", "-f", "-"], table_script(t, replace=False))
    _sh(netns.nsenter(qr) + ["sysctl", "-qw", "net.ipv4.ip_forward=1"])
    # the internet side: no conntrack, no port-unreachable answers (the reflector answers)
    _sh(netns.nsenter(ext) + ["nft", "-f", "-"], "table ip bench {\n"
        " chain pre { type filter hook prerouting priority -300; policy accept;\n  notrack\n }\n"
        " chain out { type filter hook output priority -300; policy accept;\n  notrack\n"
        "  icmp type destination-unreachable drop\n }\n}\n")
    return vm, noisy, qr, ext


def _ping(ns: str, count: int) -> subprocess.Popen:
    return subprocess.Popen(netns.nsenter(ns) + ["ping", "-i", "0.01", "-c", str(count), "-W", "1", "-q", DST],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)


_PING = re.compile(r"(\d+) packets transmitted, (\d+) received")


def run(top: str, nflows: int, probe_seconds: float, with_limits: bool, progress=print,
        pps: int = 50000) -> NoisyResult:
    cmax = conntrack_max() or 262144
    cfg = PlanConfig(conntrack_max=cmax) if with_limits else PlanConfig(conn_limits=False)
    limits = (f"per VM {cfg.vm_limit():,}, per router {cfg.router_limit():,} (nf_conntrack_max {cmax:,})"
              if with_limits else "none")
    label = "default limits" if with_limits else "no limits"
    ndst = max(1, -(-nflows // PER_DST))
    per_dst = -(-nflows // ndst)
    p = f"{top}{'l' if with_limits else 'o'}-"
    gen = flows.generator()
    procs: list[subprocess.Popen] = []
    try:
        vm, noisy, qr, ext = build(p, cfg, ndst)
        procs.append(flows.spawn(ext, [gen, "udp-reflect", str(PORT0), str(PORT0 + per_dst)]))
        procs.append(flows.start_crr_server(gen, ext, DST))
        hold = flows.spawn(noisy, [gen, "udp-hold", NOISY, "192.0.2.11", str(ndst), str(PORT0), str(nflows),
                                   str(3600), str(pps)], wait_ready=False)
        procs.append(hold)
        assert hold.stdout is not None
        line = hold.stdout.readline()                   # after the second pass: the flows are assured
        if "pass=2" not in line:
            raise RuntimeError(f"udp-hold: {line.strip()} {hold.stderr.read()[:200] if hold.stderr else ''}")
        held = int(flows.kv(line)["replied"])
        progress(f"  noisy neighbour ({label}): {held:,} of {nflows:,} flows held; probing {probe_seconds:g} s")
        count = int(probe_seconds * 100)
        pinger = _ping(vm, count)
        probe = flows.run(vm, [gen, "tcp-probe", DST, "5001", f"{probe_seconds:g}", "10", "1000", VICTIM],
                          probe_seconds + 30)
        out, _ = pinger.communicate(timeout=probe_seconds + 30)
        m = _PING.search(out)
        sent, got = (int(m.group(1)), int(m.group(2))) if m else (count, 0)
        u = usage(qr, fip_nat_table("rfp0", PAIRS, [(VICTIM, None), (NOISY, None)], cfg), [VICTIM, NOISY])
        nd = next((v.drops for v in u.vms if v.ip == NOISY), 0)
        return NoisyResult(label, nflows, held, u.connections, nd, sent, sent - got, int(probe["ok"]) +
                           int(probe["failed"]), int(probe["failed"]), float(probe["worst_ms"]), limits)
    except (RuntimeError, subprocess.TimeoutExpired, OSError, KeyError, ValueError) as e:
        return NoisyResult(label, nflows, 0, 0, 0, 0, 0, 0, 0, float("nan"), limits, error=str(e)[:300])
    finally:
        for pr in procs:
            flows.stop(pr)
        for n in netns.list_names():
            if n.startswith(p):
                netns.delete(n)
        time.sleep(0.1)

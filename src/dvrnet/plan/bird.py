"""BIRD 2 for routed mode, plan side: the `Process` of one routed fip-/snat- namespace and its
configuration text (the kernel side, start/reload/stop/ask, is `kernel/bird.py`).

What the configuration guarantees (docs/routed-mode.md; measured in
shared/design/notes/routed-mode-bgp.md):
- BIRD announces exactly the /32s dvrnet hosts here: the kernel protocol learns only routes
  with `krt_source = 94` (dvrnet's protocol) that are unicast (`dest = RTD_UNICAST`: never the
  migration blackholes) and are /32s inside the external network's *public* subnets (never the
  default route, the connected service subnet or the link-local /31s, which carry 94 too);
- it imports nothing from the ToR (FIP->FIP between nodes goes through the ToR) and writes
  nothing to the kernel (`export none`);
- eBGP to each peer with next hop self, short timers (hold 3 s, keepalive 1 s, connect delay and
  retry 1 s, error wait 1-5 s: BIRD's defaults keep a session down for a minute after a hold
  expiry), BFD (100 ms x 3 by default) and graceful restart with a short restart time (a
  restarting BIRD keeps its FIPs on the ToR; a stale path after a move lives at most that long);
- `netlink rx buffer` 16 MiB: with 1 MiB, 10,000 routes written at once overflowed the socket in
  2 of 3 runs and BIRD saw them only at its next scan (8.7 s later; with 16 MiB 0 of 4; with
  BIRD's default, already at 1,000 routes), and `learn` follows netlink events (`scan time` is the
  fallback).
The configuration does not list FIPs, so adding or moving a FIP never reloads BIRD: it changes
with the public subnets, the local address, the peers and the timers only.

Beside it, the *stale* configuration (`paths(ns)["stale"]`): the same, except that every route is
exported with the local AS prepended `BgpConfig.stale_prepend` times and the digest constant is
`stale-<digest>`. The namespace's watchdog (plan/watchdog.py) loads it when the agent stops
renewing its lease: the node keeps announcing its FIPs, but any node announcing one of them
normally (the FIP moved while this node's agent was dead) has the shorter AS path and wins at the
ToR. The agent, back, sees the stale digest and reloads the normal configuration.
"""
from __future__ import annotations

from collections.abc import Iterable

from .config import BgpConfig, BgpPeer
from .numbers import RT_PROTO
from .process import digest, runtime_dir
from .state import Process

ROLE = "bird"
KERNEL_PROTO = "dvrnet_krt"


def paths(ns: str) -> dict[str, str]:
    d = runtime_dir(ns, ROLE)
    return {"dir": d, "conf": f"{d}/bird.conf", "stale": f"{d}/bird-stale.conf", "ctl": f"{d}/ctl",
            "pid": f"{d}/pid", "log": f"{d}/bird.log"}

STALE = "stale-"     # the digest constant's prefix in the stale configuration


def _quote(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def peer_name(i: int, p: BgpPeer) -> str:
    return f"tor{i}_" + p.address.replace(".", "_")


def config_body(ns: str, router_id: str, local_ip: str, local_as: int, peers: Iterable[BgpPeer],
                public: Iterable[str], dev: str, bgp: BgpConfig, stale: bool = False) -> str:
    p = paths(ns)
    nets = ", ".join(f"{c}{{32,32}}" for c in sorted(public))
    accept = f"krt_source = {RT_PROTO} && dest = RTD_UNICAST && net ~ [ {nets} ]" if nets else "false"
    lines = [
        f"# dvrnet: BIRD of {ns} (generated from the plan; do not edit)",
        f"log {_quote(p['log'])} 1048576 {_quote(p['log'] + '.1')} {{ info, warning, error, fatal }};",
        f"router id {router_id};",
        "protocol device { scan time 10; }",
        f"protocol kernel {KERNEL_PROTO} {{",
        "  learn; scan time 10; netlink rx buffer 16777216;",
        f"  ipv4 {{ import filter {{ if {accept} then accept; reject; }}; export none; }};",
        "}",
        "protocol bfd {",
        (f"  interface {_quote(dev)} {{ min rx interval {bgp.bfd_ms} ms; min tx interval {bgp.bfd_ms} ms; "
         f"multiplier {bgp.bfd_multiplier}; }};"),
        "}",
    ]
    for i, peer in enumerate(peers):
        lines += [
            f"protocol bgp {peer_name(i, peer)} {{",
            f"  local {local_ip} as {local_as}; neighbor {peer.address} as {peer.asn};",
            f"  hold time {bgp.hold}; keepalive time {bgp.keepalive}; connect delay time 1; connect retry time 1;",
            "  error wait time 1, 5; error forget time 10; bfd on;",
            f"  graceful restart on; graceful restart time {bgp.graceful_restart};",
        ]
        if peer.password:
            lines.append(f"  password {_quote(peer.password)};")
        if stale:
            prepend = " ".join([f"bgp_path.prepend({local_as});"] * max(1, bgp.stale_prepend))
            export = f"export filter {{ if proto = {_quote(KERNEL_PROTO)} then {{ {prepend} accept; }} reject; }};"
        else:
            export = f"export where proto = {_quote(KERNEL_PROTO)};"
        lines += [f"  ipv4 {{ import none; {export} next hop self; }};", "}"]
    return "\n".join(lines) + "\n"


def bird_process(ns: str, local_ip: str, local_as: int, peers: Iterable[BgpPeer], public: Iterable[str],
                 dev: str, bgp: BgpConfig) -> Process:
    """The BIRD of routed namespace NS: BGP from LOCAL_IP (the fg-/qg- address on DEV) to PEERS,
    announcing the /32s of dvrnet's routes inside the PUBLIC subnets."""
    peers = tuple(peers)
    public = tuple(public)
    body = config_body(ns, local_ip, local_ip, local_as, peers, public, dev, bgp)
    d = digest(body)
    text = f'define DVRNET_DIGEST = "{d}";\n' + body
    stale = (f'define DVRNET_DIGEST = "{STALE}{d}";\n'
             + config_body(ns, local_ip, local_ip, local_as, peers, public, dev, bgp, stale=True))
    p = paths(ns)
    return Process(ROLE, (bgp.bird, "-c", p["conf"], "-s", p["ctl"], "-P", p["pid"]),
                   ((p["conf"], text), (p["stale"], stale)), d)

"""The lab's top-of-rack router for routed mode (`lab up --routed`): a namespace on the external
segment running BIRD 2 as AS 65000, with the "internet" behind it.

It accepts BGP from any node in the private subnet (dynamic sessions: `neighbor range ...
external`, so every fip-/snat- namespace's BIRD may connect with its own AS), with the same
short timers and BFD as the nodes (`bfd graceful`: a node's BFD going down, as it does when
its BIRD is killed, starts graceful restart instead of dropping the node's routes, so a BIRD the
agent restarts within the restart time loses nothing); it imports only /32s inside the public subnets, at most
`MAX_PREFIXES` per session (the session restarts beyond that), exports nothing to the nodes
(they send everything else to their default route: this router) and writes what it learned into
its own main table. Its control socket, pid file and log live in the lab's state directory.
"""
from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterable

TOR_ASN = 65000
MAX_PREFIXES = 20000


def tor_config(router_id: str, private: str, public: Iterable[str], log: str, bfd_ms: int = 100) -> str:
    nets = ", ".join(f"{c}{{32,32}}" for c in sorted(public))
    return f"""# the lab's ToR (dvrnet lab up --routed)
log "{log}" 1048576 "{log}.1" {{ info, warning, error, fatal }};
router id {router_id};
protocol device {{ scan time 10; }}
protocol kernel {{ netlink rx buffer 16777216; ipv4 {{ import none; export all; }}; }}
protocol bfd {{ interface "*" {{ min rx interval {bfd_ms} ms; min tx interval {bfd_ms} ms; multiplier 3; }}; }}
protocol bgp nodes {{
  local {router_id} as {TOR_ASN}; neighbor range {private} external; dynamic name "node";
  hold time 3; keepalive time 1; connect delay time 1; connect retry time 1;
  error wait time 1, 5; error forget time 10; bfd graceful; graceful restart aware;
  ipv4 {{ import limit {MAX_PREFIXES} action restart;
         import filter {{ if net ~ [ {nets} ] then accept; reject; }}; export none; }};
}}
"""


def _write(state_dir: str, router_id: str, private: str, public: Iterable[str]) -> tuple[str, str, str]:
    d = os.path.join(state_dir, "tor")
    os.makedirs(d, exist_ok=True)
    conf, ctl, pidf = (os.path.join(d, x) for x in ("bird.conf", "ctl", "pid"))
    with open(conf, "w") as f:
        f.write(tor_config(router_id, private, public, os.path.join(d, "bird.log")))
    return conf, ctl, pidf


def reconfigure(state_dir: str, router_id: str, private: str, public: Iterable[str]) -> None:
    """New public subnets to accept (the operator's step when a subnet is added to a routed
    network): rewrite the configuration, `configure` the running BIRD (sessions stay up)."""
    from ..kernel.bird import command
    conf, ctl, _ = _write(state_dir, router_id, private, public)
    rows = command(ctl, f'configure "{conf}"', timeout=10.0)
    if not any(c == 3 for c, _t in rows):
        raise RuntimeError(f"ToR BIRD did not take {conf}: {rows}")


def start(ns: str, state_dir: str, router_id: str, private: str, public: Iterable[str]) -> tuple[int, str]:
    """BIRD in NS; returns (pid, control socket). Its argv names the lab's state directory."""
    conf, ctl, pidf = _write(state_dir, router_id, private, public)
    p = subprocess.run(["ip", "netns", "exec", ns, "bird", "-c", conf, "-s", ctl, "-P", pidf],
                       capture_output=True, text=True, check=False, start_new_session=True)
    if p.returncode != 0:
        raise RuntimeError(f"ToR BIRD in {ns} did not start: {p.stderr.strip() or p.stdout.strip()}")
    end = time.monotonic() + 5
    while time.monotonic() < end:
        try:
            with open(pidf) as f:
                return int(f.read().strip()), ctl
        except (OSError, ValueError):
            time.sleep(0.02)
    raise RuntimeError(f"ToR BIRD in {ns}: no pid file")

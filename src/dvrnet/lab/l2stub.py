"""The lab's stand-in L2 agent: reports one live "Open vSwitch agent" per lab node to neutron-server.

Why: ML2 binds a port only on a host with a live L2 agent of a mechanism driver that supports the
network's type (`binding:vif_type binding_failed` otherwise), and DVR schedules a router to a host
only through bound ports. In a real cloud `neutron-openvswitch-agent` (or linuxbridge, OVN...) runs
on every node, plugs VM ports and wires tenant networks. In the lab, the lab itself builds the L2
(node bridges, VXLAN between nodes, the distributed-gateway rules: lab/world.py), so this process
only does the part ML2 needs: `report_state` for each node every INTERVAL seconds, announcing
`bridge_mappings physnet1:br-ex` (the flat external network) and `tunnel_types [vxlan]` (tenant
networks) with the node's underlay address as `tunneling_ip`. It plugs nothing, consumes nothing
and answers no RPC: port status stays DOWN in the API, which dvrnet does not read.

    python -m dvrnet.lab.l2stub --transport-url rabbit://... --node compute1=10.99.0.1 --node ...
"""
from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading

log = logging.getLogger("dvrnet.lab.l2stub")


def agent_state(host: str, tunneling_ip: str, physnet: str, bridge: str, start: bool) -> dict:
    state = {"binary": "neutron-openvswitch-agent", "host": host, "topic": "N/A",
             "agent_type": "Open vSwitch agent",
             "configurations": {"bridge_mappings": {physnet: bridge}, "tunnel_types": ["vxlan"],
                                "tunneling_ip": tunneling_ip, "integration_bridge": "br-int",
                                "datapath_type": "system", "l2_population": False, "arp_responder_enabled": False,
                                "enable_distributed_routing": True, "devices": 0,
                                "dvrnet_lab_stand_in": True}}
    if start:
        state["start_flag"] = True
    return state


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="dvrnet-lab-l2stub")
    p.add_argument("--transport-url", required=True)
    p.add_argument("--node", action="append", required=True, metavar="HOST=TUNNEL_IP")
    p.add_argument("--physnet", default="physnet1")
    p.add_argument("--bridge", default="br-ex")
    p.add_argument("--interval", type=float, default=10.0)
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    from ..neutron.rpc import RpcError, StateReporter, transport
    reporter = StateReporter(transport(None, a.transport_url), timeout=max(a.interval, 5.0))
    nodes = [tuple(n.split("=", 1)) for n in a.node]
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    started: set[str] = set()
    while not stop.is_set():
        for host, ip in nodes:
            try:
                ans = reporter.report(agent_state(host, ip, a.physnet, a.bridge, host not in started), call=True)
                if host not in started:
                    log.info("L2 stand-in for %s registered (%s)", host, ans)
                started.add(host)
            except RpcError as e:
                log.warning("report_state for %s: %s", host, e)
        stop.wait(a.interval)
    return 0


if __name__ == "__main__":
    sys.exit(main())

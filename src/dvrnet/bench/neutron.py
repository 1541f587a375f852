"""Neutron mode's benchmark rows (not tests; they report, never fail):

    python -m dvrnet.bench.neutron per-change [--sizes 100 1000]
    python -m dvrnet.bench.neutron api-ping --state-dir DIR [--rounds 20]   # a `lab up --control neutron`

per-change: the agent's own cost of one Neutron update on one router, against upstream's agent
measured on this machine (../shared/design/notes/neutron-peer-run.md: one update adding 1,000 FIPs
took 193 s, 100 took 9.6 s). The router dict is the captured payload grown to N FIPs (FIPs from
10.100.0.0/20, fixed IPs in 10.1.0.0/20, as the peer run did); neutron-server is replaced by that
recorded answer, so what is timed is dvrnet alone: NeutronSource (fetch answer -> translation ->
the host's Cloud), then the agent's pass on real namespaces (plan, read, diff, apply, read back),
then the FIP statuses read from the kernel. Rows: add N FIPs in one update, add 1 more, no-op,
remove N.

api-ping: on a running Neutron lab, POST /v2.0/floatingips (for a VM that has none) -> the first
echo reply from the internet host to it, ROUNDS times (the FIP is deleted between rounds, and
the next round starts once its address no longer answers); p50 / p99 / max.
"""
from __future__ import annotations

import argparse
import copy
import ipaddress
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

PAYLOAD = Path(__file__).resolve().parents[3] / "tests" / "neutron" / "payloads" / "payload-compute1.json"
EXT = "47dab4d0-b7ee-4d30-8e5f-534d8ca68f87"
TENANT_NET = "58111f6b-82e1-43a5-bdf7-7fc1472a3edf"
BULK_SUBNET = "bbbbbbbb-0000-4000-8000-000000000100"
PEER = {100: 9.602, 1000: 193.146}      # upstream agent, one update adding N FIPs (seconds)


def grown_router(base: dict, n: int) -> dict:
    """The captured router with a /20 tenant subnet, a /20 FIP subnet, and N FIPs on compute1."""
    r = copy.deepcopy(base)
    qr = r["_interfaces"][0]
    tsub = qr["subnets"][0]
    tsub.update(cidr="10.1.0.0/20", gateway_ip="10.1.0.1")
    qr["fixed_ips"] = [{"ip_address": "10.1.0.1", "prefixlen": 20, "subnet_id": tsub["id"]}]
    sg = r["_snat_router_interfaces"][0]
    sg["subnets"] = [dict(tsub)]
    sg["fixed_ips"] = [{"ip_address": "10.1.0.2", "prefixlen": 20, "subnet_id": tsub["id"]}]
    bulk = {"id": BULK_SUBNET, "cidr": "10.100.0.0/20", "gateway_ip": "10.100.0.1", "dns_nameservers": [],
            "ipv6_ra_mode": None, "subnetpool_id": None}
    r["gw_port"]["extra_subnets"].append(dict(bulk))
    r["_floatingip_agent_interfaces"][0]["extra_subnets"].append(dict(bulk))
    fips = []
    for i in range(n):
        hi, lo = divmod(i + 10, 250)
        fips.append({"id": str(uuid.UUID(int=0xF1F0 << 64 | i)), "floating_ip_address": f"10.100.{hi}.{lo + 2}",
                     "fixed_ip_address": f"10.1.{hi}.{lo + 2}", "floating_network_id": EXT,
                     "port_id": str(uuid.UUID(int=0xB0B0 << 64 | i)), "router_id": r["id"], "host": "compute1",
                     "dest_host": None, "status": "DOWN",
                     "port_details": {"device_owner": "compute:nova", "mac_address": f"fa:16:3e:01:{hi:02x}:{lo:02x}",
                                      "network_id": TENANT_NET, "device_id": "", "name": f"vm{i}"}})
    r["_floatingips"] = fips
    return r


class _Recorded:
    """neutron-server's answers, recorded: the router as it is now."""

    def __init__(self, router: dict):
        self.router = router

    def get_router_ids(self):
        return [self.router["id"]]

    def sync_routers(self, ids):
        return [copy.deepcopy(self.router)] if self.router["id"] in ids else []

    def get_ports_by_subnet(self, sid):
        return []

    def get_agent_gateway_port(self, net):
        return None

    def get_local_port_ids(self):
        return set()

    def get_networks(self, ids):
        return []

    def get_subnets(self, net):
        return []


def per_change(sizes=(100, 1000), say=print) -> list[dict]:
    base = json.loads(PAYLOAD.read_text())[0]
    rows: list[dict] = []
    for n in sizes:
        rows += _per_change_one(base, n, say)
    return rows


def _per_change_one(base: dict, n: int, say) -> list[dict]:
    from ..agent.loop import Agent
    from ..lab.sh import Cmd, add_netns, ip_batch, run
    from ..neutron.rpc import Event
    from ..neutron.source import NeutronSource
    from ..neutron.status import fip_statuses
    from ..plan import PlanConfig
    rows = []
    prefix = f"dvb{os.getpid() % 100000}n{n}-"
    bridges = f"{prefix}node"
    add_netns([bridges])
    run(ip_batch(bridges, ["link add br-ex type bridge", "link set br-ex up",
                           f"link add brq{TENANT_NET[:11]} type bridge", f"link set brq{TENANT_NET[:11]} up"]))
    rec = _Recorded(grown_router(base, 2))
    src = NeutronSource(rec, "compute1", "dvr", coalesce_window=0, wait=0)
    cfg = PlanConfig(netns_prefix=prefix, bridge_netns=bridges)
    agent = Agent("compute1", src, cfg)
    try:
        view = src.next_view(None)
        agent.reconcile(view.cloud)

        def change(router: dict, what: str) -> dict:
            nonlocal view
            rec.router = router
            t0 = time.perf_counter()
            src.notify(Event("routers_updated", (router["id"],)))
            view = src.next_view(view.revision)
            t1 = time.perf_counter()
            rep = agent.reconcile(view.cloud, full=False)
            t2 = time.perf_counter()
            st = fip_statuses(src.graphs.values(), agent.reconciler.observe(agent.planner.plan(view.cloud)),
                              prefix)
            t3 = time.perf_counter()
            active = sum(1 for s in st.values() for v in s.values() if v == "ACTIVE")
            row = {"fips": n, "change": what, "source_s": t1 - t0, "pass_s": t2 - t1, "status_s": t3 - t2,
                   "total_s": t3 - t0, "ops": rep.ops, "converged": rep.ok, "active": active,
                   "peer_s": PEER.get(n) if what.startswith("add N") else None}
            say(f"N={n:>5} {what:<18} {row['total_s'] * 1000:9.1f} ms (source {row['source_s'] * 1000:.1f}, "
                f"pass {row['pass_s'] * 1000:.1f}, statuses {row['status_s'] * 1000:.1f}; {rep.ops} ops, "
                f"{'converged' if rep.ok else 'NOT converged'}, {active} ACTIVE)"
                + (f"  upstream agent: {row['peer_s']:.1f} s" if row["peer_s"] else ""))
            return row
        rows.append(change(grown_router(base, n + 2), f"add N={n}"))
        rows.append(change(grown_router(base, n + 3), "add 1 more"))
        rows.append(change(grown_router(base, n + 3), "no-op"))
        rows.append(change(grown_router(base, 2), f"remove N={n + 1}"))
    finally:
        agent.close()
        names = [x for x in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True,
                                           check=False).stdout.split() if x.startswith(prefix)]
        if names:
            run(Cmd(("ip", "-force", "-batch", "-"), "".join(f"netns del {x}\n" for x in names), "root",
                    check=False))
    return rows


def api_ping(state_dir: str, rounds: int = 20, say=print) -> dict:
    import httpx

    from ..lab.checks import ping
    from ..lab.info import LabInfo
    info = LabInfo.load(state_dir)
    c = httpx.Client(base_url=info.server_url or "", timeout=60)
    fips = {f["port_id"] for f in c.get("/v2.0/floatingips").json()["floatingips"] if f.get("port_id")}
    vm = next(v for v in info.vms if v.port_id not in fips)
    nets = c.get("/v2.0/networks", params={"router:external": True}).json()["networks"]
    ext = next(n for n in nets)
    subs = [s for s in c.get("/v2.0/subnets", params={"network_id": ext["id"]}).json()["subnets"]
            if s.get("gateway_ip")]
    times = []
    for i in range(rounds):
        sub = subs[i % len(subs)]
        t0 = time.perf_counter()
        f = c.post("/v2.0/floatingips", json={"floatingip": {"floating_network_id": ext["id"], "subnet_id": sub["id"],
                                                             "port_id": vm.port_id}}).json()["floatingip"]
        addr = f["floating_ip_address"]
        while True:
            if ping(info.internet_netns, addr, count=1, wait=1).received:
                break
            if time.perf_counter() - t0 > 120:
                raise RuntimeError(f"round {i}: {addr} did not answer within 120 s")
        dt = time.perf_counter() - t0
        times.append(dt)
        say(f"round {i + 1:>2}: {addr} ({sub['name']}) first reply after {dt * 1000:.0f} ms")
        c.delete(f"/v2.0/floatingips/{f['id']}")
        end = time.perf_counter() + 120
        while ping(info.internet_netns, addr, count=1, wait=1).received and time.perf_counter() < end:
            time.sleep(0.2)
    times.sort()
    out = {"rounds": rounds, "p50_s": statistics.median(times),
           "p99_s": times[min(len(times) - 1, round(0.99 * (len(times) - 1)))], "max_s": times[-1],
           "vm": vm.name, "address_family": str(ipaddress.ip_address(addr).version)}
    say(f"API -> first ping through Neutron: p50 {out['p50_s'] * 1000:.0f} ms, p99 {out['p99_s'] * 1000:.0f} ms, "
        f"max {out['max_s'] * 1000:.0f} ms over {rounds}")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m dvrnet.bench.neutron")
    sub = ap.add_subparsers(dest="what", required=True)
    p = sub.add_parser("per-change")
    p.add_argument("--sizes", type=int, nargs="+", default=[100, 1000])
    p = sub.add_parser("api-ping")
    p.add_argument("--state-dir", required=True)
    p.add_argument("--rounds", type=int, default=20)
    a = ap.parse_args(argv)
    if os.geteuid() != 0:
        print("needs root: it creates network namespaces", file=sys.stderr)
        return 2
    if a.what == "per-change":
        rows = per_change(tuple(a.sizes))
    else:
        rows = [api_ping(a.state_dir, a.rounds)]
    print(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

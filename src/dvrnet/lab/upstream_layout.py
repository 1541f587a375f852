"""A node as neutron-l3-agent (DVR) leaves it, rebuilt from the model: what `--adopt-neutron-state`
takes over, for the lab and its tests (issue 13). Shapes, names and numbers follow upstream's
layout as recorded in shared/design/notes/neutron-peer-run.md (my reconstruction, not upstream's
code); the L2 side (the `tap` ends in the node's bridges) is what the Linux-bridge agent does.

Per router on the node, `qrouter-<router>`:
- `qr-<port>` veths whose other end `tap<port>` is in the node's tenant bridge, with the port's MAC
  and addresses *with* their connected (proto kernel) routes, and permanent neighbours for the
  subnet's ports;
- when the router has a gateway and the node an fg- port: the `rfp-`/`fpr-` veth with a /31 of
  169.254.64.0/18 (not the one dvrnet would derive: upstream allocates its own), table 16
  `default via <fpr> proto static`, one `from <fixed> lookup 16` rule per local FIP at a
  priority in 32768-72767, and per tenant subnet the SNAT redirect
  `from <qr address>/<len> lookup N` (N: that address as an integer) with `default via <sg->`;
- iptables (`neutron-l3-agent-…` chains: DNAT/SNAT per FIP, the mangle marks, the scope filter,
  the metadata mark, REDIRECT and INPUT rules) and ip6tables skeleton chains;
- upstream's sysctls and its haproxy metadata proxy (`haproxy -f <state>/ns-metadata-proxy/<router>.conf`)
  forwarding to the node's metadata socket with upstream's header rules.
`fip-<external network>`: `fg-` (other end `tap` in br-ex) with its address and connected route,
proxy ARP, `proto static` on-link routes for the other external subnets, each local FIP's
`/32 via <rfp> dev fpr-`, and per router `iif fpr- lookup N` at priority N (N: the fpr- address
as an integer) whose table holds `default via <gateway>`. Upstream puts that default only when
its fg- subnet has a gateway (the notes' variant B); the seed's fg- is in the gateway-less
service subnet, where upstream's table stays empty and no FIP answers at all (variant A) —
there would be no traffic to measure a takeover against, so the table gets the first external
subnet's gateway, as variant B has it.
`snat-<router>` on the SNAT node: `qg-`/`sg-` ports, `default via` the gateway, on-link routes,
the SNAT rules. The SNAT node's `qrouter-` is built too (dvrnet has none there: it goes whole).
"""
from __future__ import annotations

import os
import subprocess
import time
import zlib
from dataclasses import dataclass, field

from ..model import DeviceOwner
from ..model.cloud import CloudView
from ..model.placement import local_fips, routers_on_host, snat_routers_on_host
from ..plan import names
from ..plan.linklocal import SLOTS, derived_slot, pair
from .sh import Cmd, add_netns, ip_batch, parallel, run

WRAP = "neutron-l3-agent"
BUILTINS = {"raw": ("PREROUTING", "OUTPUT"), "mangle": ("PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"),
            "nat": ("PREROUTING", "OUTPUT", "POSTROUTING"), "filter": ("INPUT", "FORWARD", "OUTPUT")}
RTR_SYSCTLS = {"net.ipv4.ip_forward": 1, "net.ipv4.conf.all.arp_ignore": 1, "net.ipv4.conf.all.arp_announce": 2,
               "net.ipv6.conf.all.forwarding": 1}


def tap(port_id: str) -> str:
    return ("tap" + port_id)[:14]


def upstream_slot(router_id: str) -> int:
    """A /31 slot other than dvrnet's own derivation (upstream allocates and remembers its own)."""
    return (derived_slot(router_id) + 7) % SLOTS


def fip_priority(fixed_ip: str, taken: set[int]) -> int:
    p = 32768 + zlib.crc32(fixed_ip.encode()) % 40000
    while p in taken:
        p = 32768 + (p - 32768 + 1) % 40000
    taken.add(p)
    return p


@dataclass
class Layout:
    """What was built: namespaces, the metadata proxies' pids, and per namespace the iptables-save
    text right after (for tests)."""
    namespaces: list[str] = field(default_factory=list)
    proxies: dict[str, int] = field(default_factory=dict)


class _Ns:
    """Accumulates one namespace's commands."""

    def __init__(self, name: str):
        self.name = name
        self.links: list[str] = []          # in this namespace (veth creation: peer into the bridge ns)
        self.lines: list[str] = []          # addresses, routes, rules, neighbours
        self.sysctls: dict[str, int] = {}
        self.ipt: dict[str, list[str]] = {t: [] for t in BUILTINS}
        self.extra_chains: dict[str, list[str]] = {t: [] for t in BUILTINS}
        self.gw: str | None = None          # fip-: the per-router tables' default gateway
        self.pairs: list[tuple[str, str, str, str, str]] = []   # fip-: (rfp, rfp ip, fpr, fpr ip, qrouter ns)

    def chain(self, table: str, name: str) -> str:
        full = f"{WRAP}-{name}"
        if full not in self.extra_chains[table]:
            self.extra_chains[table].append(full)
        return full

    def rule(self, table: str, chain: str, spec: str) -> None:
        self.ipt[table].append(f"-A {chain} {spec}")

    def iptables_restore(self) -> str:
        out = []
        for table, builtins in BUILTINS.items():
            out.append(f"*{table}")
            wrapped = [f"{WRAP}-{b}" for b in builtins]
            chains = list(dict.fromkeys(wrapped + self.extra_chains[table]
                                        + (["neutron-filter-top", f"{WRAP}-local"] if table == "filter" else [])
                                        + (["neutron-postrouting-bottom"] if table == "nat" else [])))
            out += [f":{c} - [0:0]" for c in chains]
            for b in builtins:
                if table == "filter" and b in ("FORWARD", "OUTPUT"):
                    out.append(f"-A {b} -j neutron-filter-top")
                out.append(f"-A {b} -j {WRAP}-{b}")
            if table == "nat":
                out.append("-A POSTROUTING -j neutron-postrouting-bottom")
            if table == "filter":
                out.append(f"-A neutron-filter-top -j {WRAP}-local")
            out += self.ipt[table]
            out.append("COMMIT")
        return "\n".join(out) + "\n"


def ip6tables_skeleton() -> str:
    out = []
    for table in ("filter", "raw"):
        out.append(f"*{table}")
        out += [f":{WRAP}-{b} - [0:0]" for b in BUILTINS[table]]
        out += [f"-A {b} -j {WRAP}-{b}" for b in BUILTINS[table]]
        out.append("COMMIT")
    return "\n".join(out) + "\n"


def _veth(ns: _Ns, dev: str, peer: str, bridge_ns: str, mac: str | None, mtu: int) -> None:
    m = f" address {mac}" if mac else ""
    ns.links += [f"link add {dev}{m} mtu {mtu} type veth peer name {peer} mtu {mtu} netns {bridge_ns}",
                 f"link set {dev} up"]


def haproxy_config(router_id: str, socket: str, state: str) -> str:
    """Upstream's metadata proxy configuration, in its shape (global, defaults, one listener)."""
    return "\n".join([
        "global",
        "    maxconn     1024",
        f"    pidfile     {state}/external/pids/{router_id}.pid.haproxy",
        "    daemon",
        "",
        "defaults",
        "    mode http",
        "    option http-server-close",
        "    option forwardfor",
        "    retries                 3",
        "    timeout http-request    30s",
        "    timeout connect         30s",
        "    timeout client          32s",
        "    timeout server          32s",
        "    timeout http-keep-alive 30s",
        "",
        "listen listener",
        "    bind 0.0.0.0:9697",
        f"    server metadata {socket}",
        "",
        "    http-request del-header X-Neutron-Network-ID",
        f"    http-request set-header X-Neutron-Router-ID {router_id}",
        "",
    ])


def build(cloud: CloudView, host: str, prefix: str, bridge_ns: str, state: str,
          metadata_socket: str | None = None, gateway_subnet: str | None = None) -> Layout:
    """Build HOST's namespaces as upstream's agent leaves them. PREFIX: the node's namespace
    prefix; BRIDGE_NS: where its bridges are; STATE: upstream's state_path (metadata proxy
    configuration and pid files); GATEWAY_SUBNET: the external subnet (id) whose gateway the
    fip- per-router tables use (default: the first with a gateway)."""
    out: list[_Ns] = []
    tap_masters: list[str] = []
    fg_of: dict[str, tuple[str, _Ns]] = {}
    routers = routers_on_host(cloud, host)
    snat = snat_routers_on_host(cloud, host)
    for r in routers:
        if r.gateway is None or r.gateway.network_id in fg_of:
            continue
        fg = cloud.agent_gateway_port(host, r.gateway.network_id)
        if fg is None:
            continue
        net = cloud.network(r.gateway.network_id)
        f = _Ns(names.fip_ns(prefix, net.id))
        dev = names.port_dev(names.AGENT_GW_DEV, fg.id)
        _veth(f, dev, tap(fg.id), bridge_ns, fg.mac_address, net.mtu)
        tap_masters.append(f"link set {tap(fg.id)} master br-ex up")
        own = set()
        for fx in fg.fixed_ips:
            s = cloud.subnet(fx.subnet_id)
            f.lines.append(f"address add {fx.ip_address}/{s.cidr.prefixlen} dev {dev}")
            own.add(s.id)
        for s in cloud.subnets_of(net.id):
            if s.id not in own:
                f.lines.append(f"route add {s.cidr} dev {dev} scope link proto static")
        f.sysctls.update(RTR_SYSCTLS)
        f.sysctls.update({"net.ipv4.ip_nonlocal_bind": 1, f"net.ipv4.conf.{dev}.proxy_arp": 1,
                          f"net.ipv4.neigh.{dev}.proxy_delay": 1})
        f.rule("raw", f"{WRAP}-PREROUTING", "-j CT --notrack")
        subnets = [s for s in cloud.subnets_of(net.id) if s.gateway_ip is not None]
        gw = next((s for s in subnets if s.id == gateway_subnet), subnets[0] if subnets else None)
        fg_of[net.id] = (dev, f)
        f.gw = str(gw.gateway_ip) if gw is not None else None
        out.append(f)

    layout = Layout()
    proxies: list[tuple[str, str]] = []
    for r in list(routers) + [x for x in snat if x not in routers]:
        q = _Ns(names.qrouter_ns(prefix, r.id))
        q.sysctls.update(RTR_SYSCTLS)
        q.sysctls["net.ipv4.conf.all.send_redirects"] = 0
        sg = {}
        for p in cloud.router_ports(r.id, DeviceOwner.ROUTER_SNAT):
            for fx in p.fixed_ips:
                sg[fx.subnet_id] = str(fx.ip_address)
        for port in cloud.router_interfaces(r.id):
            net = cloud.network(port.network_id)
            dev = names.port_dev(names.ROUTER_IF_DEV, port.id)
            _veth(q, dev, tap(port.id), bridge_ns, port.mac_address, net.mtu)
            tap_masters.append(f"link set {tap(port.id)} master {names.tenant_bridge(net.id)} up")
            q.sysctls[f"net.ipv4.conf.{dev}.send_redirects"] = 0
            for fx in port.fixed_ips:
                s = cloud.subnet(fx.subnet_id)
                q.lines.append(f"address add {fx.ip_address}/{s.cidr.prefixlen} dev {dev}")
                for other in cloud.ports_by_subnet.get(s.id, ()):
                    ip = other.ip_on(s.id)
                    if other.id != port.id and other.mac_address and ip is not None and ip != fx.ip_address:
                        q.lines.append(f"neigh replace {ip} lladdr {other.mac_address} dev {dev} nud permanent")
                if s.id in sg and r in routers:
                    n = int(fx.ip_address)
                    q.lines.append(f"route add default via {sg[s.id]} dev {dev} table {n} proto static")
                    q.lines.append(f"rule add from {fx.ip_address}/{s.cidr.prefixlen} lookup {n} priority {n}")
            q.rule("mangle", q.chain("mangle", "scope"), f"-i {dev} -j MARK --set-xmark 0x4000000/0xffff0000")
            q.rule("filter", q.chain("filter", "scope"),
                   f"-o {dev} -m mark ! --mark 0x4000000/0xffff0000 -j DROP")
        if r.gateway is not None and r.gateway.network_id in fg_of and r in routers:
            fg_dev, f = fg_of[r.gateway.network_id]
            rfp, fpr = names.rfp_dev(r.id), names.fpr_dev(r.id)
            rfp_ip, fpr_ip = pair(upstream_slot(r.id))
            q.links += [f"link add {rfp} type veth peer name {fpr} netns {f.name}", f"link set {rfp} up"]
            q.lines.append(f"address add {rfp_ip}/31 dev {rfp}")
            f.lines += [f"address add {fpr_ip}/31 dev {fpr}", f"link set {fpr} up"]
            q.lines.append(f"route add default via {fpr_ip} dev {rfp} table 16 proto static")
            table = int(fpr_ip)
            f.lines.append(f"rule add iif {fpr} lookup {table} priority {table}")
            if f.gw:
                f.lines.append(f"route add default via {f.gw} dev {fg_dev} table {table} proto static onlink")
            f.pairs.append((rfp, str(rfp_ip), fpr, str(fpr_ip), q.name))
            taken: set[int] = set()
            q.rule("mangle", q.chain("mangle", "scope"), f"-i {rfp} -j MARK --set-xmark 0x4000000/0xffff0000")
            q.rule("filter", q.chain("filter", "scope"), f"-o {rfp} -m mark ! --mark 0x4000000/0xffff0000 -j DROP")
            q.rule("nat", f"{WRAP}-POSTROUTING", f"! -o {rfp} -m conntrack ! --ctstate DNAT -j ACCEPT")
            q.rule("nat", f"{WRAP}-snat", f"-j {q.chain('nat', 'float-snat')}")
            q.rule("nat", "neutron-postrouting-bottom",
                   '-m comment --comment "Perform source NAT on outgoing traffic." -j ' + f"{WRAP}-snat")
            q.chain("nat", "snat")
            for fip in local_fips(cloud, host, r):
                a, fixed = str(fip.floating_ip_address), str(fip.fixed_ip_address)
                q.lines.append(f"rule add from {fixed} lookup 16 priority {fip_priority(fixed, taken)}")
                f.lines.append(f"route add {a}/32 via {rfp_ip} dev {fpr} proto static")
                q.rule("nat", f"{WRAP}-PREROUTING", f"-d {a}/32 -i {rfp} -j DNAT --to-destination {fixed}")
                q.rule("nat", f"{WRAP}-float-snat", f"-s {fixed}/32 -j SNAT --to-source {a} --random-fully")
            q.sysctls[f"net.ipv4.conf.{rfp}.send_redirects"] = 0
        mark = q.chain("mangle", "mark")
        q.rule("mangle", f"{WRAP}-PREROUTING", f"-j {mark}")
        q.rule("mangle", f"{WRAP}-PREROUTING", f"-j {q.chain('mangle', 'scope')}")
        q.rule("mangle", f"{WRAP}-PREROUTING", "-m connmark ! --mark 0x0/0xffff0000 -j CONNMARK --restore-mark "
                                               "--nfmask 0xffff0000 --ctmask 0xffff0000")
        q.rule("mangle", f"{WRAP}-PREROUTING", f"-j {q.chain('mangle', 'floatingip')}")
        q.rule("mangle", f"{WRAP}-PREROUTING", "-d 169.254.169.254/32 -i qr-+ -p tcp -m tcp --dport 80 "
                                               "-j MARK --set-xmark 0x1/0xffff")
        q.rule("mangle", q.chain("mangle", "float-snat"), "-m connmark --mark 0x0/0xffff0000 -j CONNMARK "
                                                          "--save-mark --nfmask 0xffff0000 --ctmask 0xffff0000")
        q.rule("nat", f"{WRAP}-PREROUTING", "-d 169.254.169.254/32 -i qr-+ -p tcp -m tcp --dport 80 "
                                            "-j REDIRECT --to-ports 9697")
        q.rule("filter", f"{WRAP}-FORWARD", f"-j {q.chain('filter', 'scope')}")
        q.rule("filter", f"{WRAP}-INPUT", "-m mark --mark 0x1/0xffff -j ACCEPT")
        q.rule("filter", f"{WRAP}-INPUT", "-p tcp -m tcp --dport 9697 -j DROP")
        q.rule("filter", q.chain("filter", "scope"), "-m mark --mark 0x1/0xffff -j DROP")
        q.chain("nat", "float-snat")
        q.chain("nat", "snat")
        out.append(q)
        if metadata_socket and cloud.router_interfaces(r.id):
            proxies.append((q.name, r.id))

    for r in snat:
        gw_port = cloud.gateway_port(r.id)
        if gw_port is None or r.gateway is None:
            continue
        ext = cloud.network(r.gateway.network_id)
        s = _Ns(names.snat_ns(prefix, r.id))
        qg = names.port_dev(names.ROUTER_GW_DEV, gw_port.id)
        _veth(s, qg, tap(gw_port.id), bridge_ns, gw_port.mac_address, ext.mtu)
        tap_masters.append(f"link set {tap(gw_port.id)} master br-ex up")
        own, gw_ip, snat_ip = set(), None, None
        for fx in gw_port.fixed_ips:
            sub = cloud.subnet(fx.subnet_id)
            s.lines.append(f"address add {fx.ip_address}/{sub.cidr.prefixlen} dev {qg}")
            own.add(sub.id)
            if gw_ip is None and sub.gateway_ip is not None:
                gw_ip, snat_ip = str(sub.gateway_ip), str(fx.ip_address)
        for sub in cloud.subnets_of(ext.id):
            if sub.id not in own:
                s.lines.append(f"route add {sub.cidr} dev {qg} scope link proto static")
        if gw_ip:
            s.lines.append(f"route add default via {gw_ip} dev {qg} proto static")
        for p in cloud.router_ports(r.id, DeviceOwner.ROUTER_SNAT):
            net = cloud.network(p.network_id)
            dev = names.port_dev(names.SNAT_IF_DEV, p.id)
            _veth(s, dev, tap(p.id), bridge_ns, p.mac_address, net.mtu)
            tap_masters.append(f"link set {tap(p.id)} master {names.tenant_bridge(net.id)} up")
            for fx in p.fixed_ips:
                sub = cloud.subnet(fx.subnet_id)
                s.lines.append(f"address add {fx.ip_address}/{sub.cidr.prefixlen} dev {dev}")
        s.sysctls.update(RTR_SYSCTLS)
        s.sysctls.update({"net.ipv4.ip_nonlocal_bind": 1, "net.netfilter.nf_conntrack_tcp_loose": 0})
        if snat_ip:
            s.rule("nat", f"{WRAP}-POSTROUTING", f"! -o {qg} -m conntrack ! --ctstate DNAT -j ACCEPT")
            s.rule("nat", f"{WRAP}-snat", f"-o {qg} -j SNAT --to-source {snat_ip} --random-fully")
            s.rule("nat", f"{WRAP}-snat", f"-m mark ! --mark 0x2/0xffff -m conntrack --ctstate DNAT "
                                          f"-j SNAT --to-source {snat_ip} --random-fully")
            s.rule("nat", "neutron-postrouting-bottom",
                   '-m comment --comment "Perform source NAT on outgoing traffic." -j ' + f"{WRAP}-snat")
            s.chain("nat", "snat")
            s.rule("mangle", f"{WRAP}-PREROUTING", f"-j {s.chain('mangle', 'mark')}")
            s.rule("mangle", s.chain("mangle", "mark"), f"-i {qg} -j MARK --set-xmark 0x2/0xffff")
        out.append(s)

    # namespaces, then the links (each veth born with its peer in the bridge namespace), then the rest
    add_netns(n.name for n in out)
    for n in out:
        run(ip_batch(n.name, ["link set lo up"] + n.links))
    if tap_masters:
        run(ip_batch(bridge_ns, tap_masters))
    parallel([ip_batch(n.name, n.lines) for n in out if n.lines])
    for f in out:
        for rfp, rfp_ip, fpr, fpr_ip, qname in f.pairs:      # each side's permanent neighbour of the other
            run(ip_batch(qname, [f"neigh replace {fpr_ip} lladdr {_mac(f.name, fpr)} dev {rfp} nud permanent"]))
            run(ip_batch(f.name, [f"neigh replace {rfp_ip} lladdr {_mac(qname, rfp)} dev {fpr} nud permanent"]))
    parallel([Cmd(("ip", "netns", "exec", n.name, "sysctl", "-q", "-w",
                   *(f"{k}={v}" for k, v in n.sysctls.items())), None, n.name) for n in out])
    parallel([Cmd(("ip", "netns", "exec", n.name, "iptables-restore", "--noflush"), n.iptables_restore(), n.name)
              for n in out])
    parallel([Cmd(("ip", "netns", "exec", n.name, "ip6tables-restore", "--noflush"), ip6tables_skeleton(), n.name)
              for n in out])
    for ns_name, rid in proxies:
        conf_dir, pid_dir = os.path.join(state, "ns-metadata-proxy"), os.path.join(state, "external", "pids")
        os.makedirs(conf_dir, exist_ok=True)
        os.makedirs(pid_dir, exist_ok=True)
        conf = os.path.join(conf_dir, f"{rid}.conf")
        with open(conf, "w") as fh:
            fh.write(haproxy_config(rid, metadata_socket or "", state))
        subprocess.run(["ip", "netns", "exec", ns_name, "haproxy", "-f", conf], check=True, capture_output=True,
                       start_new_session=True)
        with open(os.path.join(pid_dir, f"{rid}.pid.haproxy")) as fh:
            layout.proxies[ns_name] = int(fh.read().split()[0])
    layout.namespaces = [n.name for n in out]
    settle(layout.namespaces)
    return layout


def settle(namespaces: list[str], timeout: float = 10.0) -> None:
    """Wait until IPv6 duplicate address detection is over on upstream's links (the kernel
    changes their addresses and local routes until then; a `qr-` link-local address fails it
    for good where the distributed gateway's MAC is seen from another node: `dadfailed`)."""
    def busy(n: str) -> bool:
        return any("tentative" in ln and "dadfailed" not in ln
                   for ln in run(Cmd(("ip", "-n", n, "-6", "addr"), None, n)).stdout.splitlines())
    end = time.monotonic() + timeout
    while any(busy(n) for n in namespaces):
        if time.monotonic() > end:
            raise TimeoutError(f"IPv6 addresses still tentative after {timeout:.0f}s")
        time.sleep(0.1)


def _mac(ns: str, dev: str) -> str:
    p = run(Cmd(("ip", "-n", ns, "-br", "link", "show", "dev", dev), None, ns))
    return p.stdout.split()[2]


def plant_foreign(ns: str) -> dict[str, str]:
    """Objects in NS that are not upstream's (a takeover must leave them): a route of another
    protocol, an unrelated rule, an nftables table, an iptables chain not named like upstream's.
    Returns {what: how to see it}."""
    run(ip_batch(ns, ["route add blackhole 192.0.2.200/32 proto 99",
                      "rule add from 192.0.2.0/24 lookup 200 priority 1000"]))
    run(Cmd(("ip", "netns", "exec", ns, "nft", "-f", "-"),
            "table inet lab_audit {\n  chain audit_fwd {\n    type filter hook forward priority 10; policy accept;\n"
            "    counter\n  }\n}\n", ns))
    run(Cmd(("ip", "netns", "exec", ns, "iptables-restore", "--noflush"),
            "*filter\n:lab-audit - [0:0]\n-A lab-audit -s 192.0.2.0/24 -j RETURN\n-A INPUT -j lab-audit\nCOMMIT\n", ns))
    return {"route": "blackhole 192.0.2.200 proto 99", "rule": "1000: from 192.0.2.0/24 lookup 200",
            "nft": "table inet lab_audit", "iptables": "-A INPUT -j lab-audit"}


__all__ = ["Layout", "build", "plant_foreign", "settle"]

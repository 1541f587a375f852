"""A synthetic cloud of any size, built directly (not through `ops`) so 10,000 FIPs take well
under a second: one external network with the seed's three subnets plus a large FIP subnet,
`routers` routers each with one tenant /16, and `fips` VMs with a FIP each, spread round-robin
over the routers, all on one compute host. Every address is computed, and the result passes
`Cloud.validate()`. Used by property tests and benchmarks.
"""
from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network

from ..model import (
    AgentMode,
    Cloud,
    DeviceOwner,
    ExternalGateway,
    FixedIP,
    FloatingIP,
    Host,
    Network,
    Port,
    Router,
    Subnet,
)
from .seed import seed_id


def _mac(n: int, kind: int) -> str:
    return f"fa:16:3e:{kind:02x}:{(n >> 8) & 0xff:02x}:{n & 0xff:02x}"


def scale_cloud(routers: int = 1, fips: int = 1, host: str = "compute1", extra_subnets: int = 0) -> Cloud:
    if routers > 250 or fips > 60000:
        raise ValueError("scale_cloud: at most 250 routers and 60,000 FIPs")
    nets, subs, rtrs, ports, fls = [], [], [], [], []
    ext = Network(seed_id("network", "public"), "public", external=True)
    nets.append(ext)
    red = Subnet(seed_id("subnet", "red"), ext.id, IPv4Network("203.0.113.0/24"), IPv4Address("203.0.113.1"), name="red")
    green = Subnet(seed_id("subnet", "green"), ext.id, IPv4Network("198.51.100.0/24"), IPv4Address("198.51.100.1"), name="green")
    svc = Subnet(seed_id("subnet", "fg-service"), ext.id, IPv4Network("100.64.0.0/24"), None,
                 service_types=(DeviceOwner.AGENT_GATEWAY.value,), name="fg-service")
    big = Subnet(seed_id("subnet", "fip-pool"), ext.id, IPv4Network("100.96.0.0/16"), IPv4Address("100.96.0.1"), name="fip-pool")
    subs += [red, green, svc, big]
    for i in range(extra_subnets):
        subs.append(Subnet(seed_id("subnet", f"extra{i}"), ext.id, IPv4Network(f"100.{100 + i}.0.0/24"),
                           IPv4Address(f"100.{100 + i}.0.1"), name=f"extra{i}"))
    hosts = [Host(host, AgentMode.DVR), Host("network1", AgentMode.DVR_SNAT)]
    ports.append(Port(seed_id("port", f"fg-{host}"), ext.id, DeviceOwner.AGENT_GATEWAY.value, host, host,
                      (FixedIP(svc.id, IPv4Address("100.64.0.2")),), _mac(0, 0xf0)))
    tenant_subs = []
    for r in range(routers):
        rid = seed_id("router", f"r{r}")
        net = Network(seed_id("network", f"t{r}"), f"t{r}", mtu=1450)
        sub = Subnet(seed_id("subnet", f"t{r}"), net.id, IPv4Network(f"10.{r}.0.0/16"), IPv4Address(f"10.{r}.0.1"))
        nets.append(net)
        subs.append(sub)
        tenant_subs.append((net, sub))
        gw = Port(seed_id("port", f"gw{r}"), ext.id, DeviceOwner.ROUTER_GATEWAY.value, rid, "network1",
                  (FixedIP(red.id, IPv4Address("203.0.113.10") + r),), _mac(r, 0xf1))
        rtrs.append(Router(rid, f"r{r}", gateway=ExternalGateway(ext.id, gw.fixed_ips)))
        ports.append(gw)
        ports.append(Port(seed_id("port", f"qr{r}"), net.id, DeviceOwner.ROUTER_INTERFACE_DISTRIBUTED.value, rid, "",
                          (FixedIP(sub.id, sub.gateway_ip),), _mac(r, 0xf2)))
        ports.append(Port(seed_id("port", f"sg{r}"), net.id, DeviceOwner.ROUTER_SNAT.value, rid, "network1",
                          (FixedIP(sub.id, sub.gateway_ip + 1),), _mac(r, 0xf3)))
    for i in range(fips):
        r = i % routers
        net, sub = tenant_subs[r]
        fixed = sub.gateway_ip + 2 + i // routers
        pid = seed_id("port", f"vm{i}")
        ports.append(Port(pid, net.id, "compute:nova", seed_id("server", f"vm{i}"), host,
                          (FixedIP(sub.id, fixed),), _mac(i, 0x10 + (i >> 16))))
        fls.append(FloatingIP(seed_id("floatingip", f"f{i}"), ext.id, IPv4Address("100.96.0.2") + i, big.id, pid, fixed, rtrs[r].id))
    return Cloud.of(nets, subs, rtrs, ports, fls, hosts).validate()

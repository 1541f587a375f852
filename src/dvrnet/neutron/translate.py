"""Neutron's L3 payloads -> dvrnet model resources, one router at a time. Pure: no I/O, no oslo.

`translate_router(router, host, ports_by_subnet, agent_gateways)` takes one router dict as
`sync_routers` returns it (neutron-payloads/ in the design notes), the ports of its tenant subnets
(`get_ports_by_subnet`) and agent-gateway ports fetched with `get_agent_gateway_port`, and returns
a `RouterGraph`: the model resources that router brings to HOST. `cloud_of(host, mode, graphs)`
merges the graphs of every router the host serves into one `Cloud`.

What maps to what:
- `gw_port` -> the router's `network:router_gateway` port (bound to `gw_port_host`, the SNAT node)
  and, with `gw_port.subnets + extra_subnets` (and the same lists of the host's agent-gateway
  port), the external network's subnets with their gateways (the service subnet has none);
- a FIP carries no subnet id: its subnet is the external subnet whose CIDR holds its address;
- `_floatingip_agent_interfaces` (or the port `get_agent_gateway_port` created) -> the host's
  `fg-` port; its address comes from the service subnet. dvrnet's model names the host in an
  agent-gateway port's `device_id` (Neutron puts the L3 agent's id there);
- `_interfaces` -> `qr-` ports (`network:router_interface_distributed`) and the tenant networks
  and subnets; `_snat_router_interfaces` -> `sg-` ports, bound to the SNAT node;
- `_floatingips`: only the FIPs this host serves — `host` is this host, or `dest_host` is (the
  destination of a live migration prepares the FIP before the port moves); their ports are
  bound here in the graph. FIPs bound elsewhere (a dvr_snat node gets every FIP of its routers)
  and centralized ones (`dvr_snat_bound`) are left out;
- the ports of `get_ports_by_subnet` (every bound port of a tenant subnet, without its binding)
  -> permanent neighbours in the qrouter. Which of them are bound to HOST (what places the router
  here) comes from `local_ports` when given (a dvr_snat node, which also gets routers only for
  their SNAT); otherwise the server sent the router because HOST serves it (a dvr node gets only
  such routers), so its compute ports count as bound here.

Routed mode (S6, docs/routed-mode.md): `sync_routers` carries no network tags and no subnet
`service_types`; the source fetches them (rpc.L3Plugin `get_networks`, `get_subnets`) and hands
them in as `external`: network id -> `ExternalInfo` (its tags, its subnets' service types). The
external network then carries its tags (`dvrnet:routed` makes it routed) and its subnets their
service types (typed `network:floatingip_agent_gateway` / `network:router_gateway`: private).
`external_info(networks, subnet_primitives)` reads the two answers (network dicts of
`get_networks`; Subnet OVO primitives of `bulk_pull`). Service types dvrnet does not know are
left out (they decide nothing here). Without an entry for the network it is `l2`, as before.

Refused (`Refused`, with the reason; the router is left untouched): not distributed, HA, an IPv6
external gateway, extra routes, default-route ECMP/BFD, port forwarding FIPs, a gateway on a
routed network without an address in a private subnet (`openstack router set --external-gateway
EXT --fixed-ip subnet=PRIVATE --fixed-ip subnet=PUBLIC R` gives it one), and any field that does
not parse (named in the reason). IPv6 subnets of a network are skipped (dvrnet is IPv4 only, like
upstream's fip namespace).
"""
from __future__ import annotations

import ipaddress
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Address

from ..model import Cloud, DeviceOwner, ExternalGateway, FixedIP, FloatingIP, Host, Network, Port, Router, Subnet
from ..model.errors import DvrnetError
from ..model.resources import (
    ROUTED_PRIVATE_SERVICE_TYPES,
    ROUTED_TAG,
    AgentMode,
    check_tag,
    is_compute,
    parse_cidr,
    parse_ip,
    valid_service_type,
)

ROUTER_OWNED = frozenset({DeviceOwner.ROUTER_GATEWAY.value, DeviceOwner.ROUTER_INTERFACE_DISTRIBUTED.value,
                          DeviceOwner.ROUTER_INTERFACE.value, DeviceOwner.ROUTER_SNAT.value,
                          DeviceOwner.AGENT_GATEWAY.value, DeviceOwner.FLOATINGIP.value})


class Refused(DvrnetError):
    """dvrnet cannot serve this router; `reason` says why (and names the field when one is wrong)."""

    def __init__(self, router_id: str, reason: str):
        super().__init__(f"router {router_id}: {reason}")
        self.router_id = router_id
        self.reason = reason


@dataclass(frozen=True)
class ExternalInfo:
    """What `sync_routers` leaves out of an external network: its tags, and the service types of
    its subnets (subnet id -> types; a subnet not listed has none)."""
    tags: tuple[str, ...] = ()
    service_types: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def routed(self) -> bool:
        return ROUTED_TAG in self.tags


class BadAnswer(DvrnetError):
    """An answer of get_networks / bulk_pull that does not parse (names the field)."""


def _tags(value: object, path: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise BadAnswer(f"{path}: expected a list of tags, got {type(value).__name__}")
    try:
        return tuple(sorted({check_tag(t) for t in value}))
    except DvrnetError as e:
        raise BadAnswer(f"{path}: {e}") from None


def _ovo_data(prim: object, path: str, name: str) -> dict:
    """The fields of one oslo.versionedobjects primitive of object NAME."""
    if not isinstance(prim, dict) or prim.get("versioned_object.name") != name:
        raise BadAnswer(f"{path}: not a {name} object primitive")
    data = prim.get("versioned_object.data")
    if not isinstance(data, dict):
        raise BadAnswer(f"{path}.versioned_object.data: expected an object")
    return data


def external_info(networks: Iterable[object], subnets: Mapping[str, Sequence[object]]) -> dict[str, ExternalInfo]:
    """NETWORKS (network dicts of `get_networks`, at least `id` and `tags`) and SUBNETS (network id
    -> the Subnet primitives `bulk_pull` returned for it) -> network id -> ExternalInfo, for every
    network in either. Raises BadAnswer naming what does not parse."""
    tags: dict[str, tuple[str, ...]] = {}
    for i, n in enumerate(networks):
        if not isinstance(n, dict) or not isinstance(n.get("id"), str):
            raise BadAnswer(f"get_networks[{i}]: not a network with an id")
        tags[n["id"]] = _tags(n.get("tags"), f"get_networks[{i}].tags")
    types: dict[str, dict[str, tuple[str, ...]]] = {}
    for nid, prims in subnets.items():
        by = types.setdefault(nid, {})
        for i, p in enumerate(prims):
            path = f"bulk_pull(Subnet, network_id={nid})[{i}]"
            d = _ovo_data(p, path, "Subnet")
            sid, st = d.get("id"), d.get("service_types")
            if not isinstance(sid, str):
                raise BadAnswer(f"{path}.id: missing or not a string")
            if d.get("network_id") not in (None, nid):
                raise BadAnswer(f"{path}.network_id: {d.get('network_id')!r} is not {nid}")
            if st is not None and not (isinstance(st, list) and all(isinstance(x, str) for x in st)):
                raise BadAnswer(f"{path}.service_types: expected a list of strings")
            known = tuple(dict.fromkeys(x for x in st or () if valid_service_type(x)))
            if known:
                by[sid] = known
    return {nid: ExternalInfo(tags.get(nid, ()), types.get(nid, {})) for nid in {*tags, *types}}


@dataclass(frozen=True)
class RouterGraph:
    """What one router brings to one host.
    networks: every network it names; subnets: per network, the subnets this payload knows;
    ports_on_subnet: per tenant subnet, its ports from get_ports_by_subnet (neighbours);
    own_ports: the router's gateway, qr- and sg- ports; agent_gateways: the host's fg- port per
    external network; fips: the FIPs this host serves; skipped_fips: FIP id -> why it is not
    served here although it is this host's (reported ERROR)."""
    router: Router
    networks: Mapping[str, Network] = field(default_factory=dict)
    subnets: Mapping[str, tuple[Subnet, ...]] = field(default_factory=dict)
    ports_on_subnet: Mapping[str, tuple[Port, ...]] = field(default_factory=dict)
    own_ports: tuple[Port, ...] = ()
    agent_gateways: Mapping[str, Port] = field(default_factory=dict)
    fips: tuple[FloatingIP, ...] = ()
    skipped_fips: Mapping[str, str] = field(default_factory=dict)
    tenant_subnet_ids: tuple[str, ...] = ()

    @property
    def external_network_id(self) -> str | None:
        return self.router.gateway.network_id if self.router.gateway else None

    @property
    def needs_agent_gateway(self) -> bool:
        """The router has a gateway but the payload brought no fg- port for this host."""
        net = self.external_network_id
        return net is not None and net not in self.agent_gateways


class _Field:
    """Reads one payload with errors that name the field path (`gw_port.fixed_ips[0].ip_address`)."""

    def __init__(self, router_id: str):
        self.rid = router_id

    def fail(self, path: str, why: str) -> Refused:
        return Refused(self.rid, f"payload field {path}: {why}")

    def dict(self, d: object, path: str) -> dict:
        if not isinstance(d, dict):
            raise self.fail(path, f"expected an object, got {type(d).__name__}")
        return d

    def list(self, v: object, path: str) -> list:
        if v is None:
            return []
        if not isinstance(v, list):
            raise self.fail(path, f"expected a list, got {type(v).__name__}")
        return v

    def str(self, d: dict, key: str, path: str, optional: bool = False) -> str:
        v = d.get(key)
        if v is None and optional:
            return ""
        if not isinstance(v, str) or (not v and not optional):
            raise self.fail(f"{path}.{key}", "missing or not a string")
        return v

    def int(self, d: dict, key: str, path: str, default: int) -> int:
        v = d.get(key, default)
        if v is None:
            return default
        if not isinstance(v, int) or isinstance(v, bool):
            raise self.fail(f"{path}.{key}", f"{v!r} is not an integer")
        return v


def _is_v4(value: object) -> bool:
    try:
        return ipaddress.ip_network(str(value), strict=False).version == 4
    except ValueError:
        return False


def _subnet(f: _Field, d: dict, network_id: str, path: str,
            service_types: Mapping[str, tuple[str, ...]] | None = None) -> Subnet | None:
    """A model Subnet from a payload subnet dict; None for an IPv6 subnet. SERVICE_TYPES: the
    external network's, fetched apart (the payload has none)."""
    d = f.dict(d, path)
    sid = f.str(d, "id", path)
    cidr_s = d.get("cidr")
    if not _is_v4(cidr_s):
        if isinstance(cidr_s, str) and ":" in cidr_s:
            return None
        raise f.fail(f"{path}.cidr", f"{cidr_s!r} is not a CIDR")
    try:
        cidr = parse_cidr(f"{path}.cidr", cidr_s)
        gw = d.get("gateway_ip")
        gw_ip = parse_ip(f"{path}.gateway_ip", gw) if gw else None
        return Subnet(id=sid, network_id=network_id, cidr=cidr, gateway_ip=gw_ip, name=str(d.get("name") or ""),
                      service_types=(service_types or {}).get(sid, ()))
    except DvrnetError as e:
        raise f.fail(path, str(e)) from None


def _fixed_ips(f: _Field, port: dict, path: str, known: set[str] | None = None) -> tuple[FixedIP, ...]:
    out = []
    for i, fi in enumerate(f.list(port.get("fixed_ips"), f"{path}.fixed_ips")):
        p = f"{path}.fixed_ips[{i}]"
        fi = f.dict(fi, p)
        ip_s = fi.get("ip_address")
        if isinstance(ip_s, str) and ":" in ip_s:
            continue                                    # IPv6: not dvrnet's
        sid = f.str(fi, "subnet_id", p)
        if known is not None and sid not in known:
            continue                                    # a subnet this router does not serve
        try:
            out.append(FixedIP(sid, parse_ip(f"{p}.ip_address", ip_s)))
        except DvrnetError as e:
            raise f.fail(p, str(e)) from None
    return tuple(out)


def _mac(f: _Field, d: dict, path: str) -> str:
    m = d.get("mac_address") or ""
    if not isinstance(m, str):
        raise f.fail(f"{path}.mac_address", "not a string")
    return m.lower()


def _port(f: _Field, d: dict, path: str, owner: str, device_id: str, host: str,
          known: set[str] | None = None) -> Port:
    d = f.dict(d, path)
    try:
        return Port(id=f.str(d, "id", path), network_id=f.str(d, "network_id", path), device_owner=owner,
                    device_id=device_id, host=host, fixed_ips=_fixed_ips(f, d, path, known),
                    mac_address=_mac(f, d, path), name=str(d.get("name") or ""),
                    admin_state_up=bool(d.get("admin_state_up", True)))
    except DvrnetError as e:
        if isinstance(e, Refused):
            raise
        raise f.fail(path, str(e)) from None


def _refusal(f: _Field, r: dict) -> str | None:
    if r.get("distributed") is not True:
        return "not a distributed router (dvrnet serves DVR routers only)"
    if r.get("ha"):
        return "an HA router (L3 HA is not supported by dvrnet)"
    if r.get("routes"):
        return "has extra routes (`routes`), which dvrnet does not install"
    if r.get("enable_default_route_ecmp") or r.get("enable_default_route_bfd"):
        return "asks for default-route ECMP/BFD, which dvrnet does not provide"
    if r.get("_pf_floatingips"):
        return "has port-forwarding floating IPs (an L3 extension dvrnet does not provide)"
    gw = r.get("gw_port")
    if isinstance(gw, dict):
        for fi in gw.get("fixed_ips") or ():
            if isinstance(fi, dict) and isinstance(fi.get("ip_address"), str) and ":" in fi["ip_address"]:
                return "has an IPv6 external gateway address (dvrnet is IPv4 only)"
        egi = r.get("external_gateway_info") or {}
        if isinstance(egi, dict) and egi.get("qos_policy_id"):
            return "has a gateway QoS policy, which dvrnet does not apply"
    return None


def translate_router(router: object, host: str, ports_by_subnet: Mapping[str, Sequence[dict]] | None = None,
                     agent_gateways: Mapping[str, dict] | None = None,
                     local_ports: Collection[str] | None = None,
                     external: Mapping[str, ExternalInfo] | None = None) -> RouterGraph:
    """One router dict of `sync_routers` -> its RouterGraph on HOST; raises Refused.
    local_ports: ids of the ports bound to HOST when known (a dvr_snat node asks ML2); None: the
    server sent the router because HOST serves it, so its compute ports count as bound here.
    external: network id -> its tags and subnet service types (see the module docstring)."""
    if not isinstance(router, dict) or not isinstance(router.get("id"), str) or not router["id"]:
        raise Refused("?", "payload is not a router object with an id")
    rid = router["id"]
    f = _Field(rid)
    why = _refusal(f, router)
    if why:
        raise Refused(rid, why)
    ports_by_subnet = ports_by_subnet or {}
    agent_gateways = agent_gateways or {}
    ext_info = external or {}
    networks: dict[str, Network] = {}
    subnets: dict[str, dict[str, Subnet]] = {}

    def add_net(nid: str, mtu: int, is_external: bool) -> None:
        old = networks.get(nid)
        if old is None or (is_external and not old.external):
            tags = ext_info[nid].tags if is_external and nid in ext_info else ()
            try:
                networks[nid] = Network(id=nid, external=is_external, mtu=mtu, tags=tags)
            except DvrnetError as e:
                raise f.fail(f"network {nid}", str(e)) from None

    def add_subnets(port: dict, nid: str, path: str) -> None:
        info = ext_info.get(nid) if networks.get(nid) is not None and networks[nid].external else None
        for key in ("subnets", "extra_subnets"):
            for i, s in enumerate(f.list(port.get(key), f"{path}.{key}")):
                sub = _subnet(f, s, nid, f"{path}.{key}[{i}]", info.service_types if info else None)
                if sub is not None:
                    subnets.setdefault(nid, {}).setdefault(sub.id, sub)

    own: list[Port] = []
    gateway = None
    ext_net = None
    gw = router.get("gw_port")
    if gw is not None:
        gw = f.dict(gw, "gw_port")
        ext_net = f.str(gw, "network_id", "gw_port")
        add_net(ext_net, f.int(gw, "mtu", "gw_port", 1500), True)
        add_subnets(gw, ext_net, "gw_port")
        gw_host = router.get("gw_port_host") or gw.get("binding:host_id") or ""
        gp = _port(f, gw, "gw_port", DeviceOwner.ROUTER_GATEWAY.value, rid, str(gw_host))
        if not gp.fixed_ips:
            raise Refused(rid, "the gateway port has no IPv4 address")
        if networks[ext_net].routed:
            _check_routed_gateway(rid, ext_net, gp, subnets.get(ext_net, {}))
        own.append(gp)
        egi = router.get("external_gateway_info") or {}
        snat = egi.get("enable_snat", router.get("enable_snat", True)) if isinstance(egi, dict) else True
        gateway = ExternalGateway(network_id=ext_net, external_fixed_ips=gp.fixed_ips, enable_snat=bool(snat))

    fg_ports: dict[str, Port] = {}
    fg_src = [(f"_floatingip_agent_interfaces[{i}]", p)
              for i, p in enumerate(f.list(router.get("_floatingip_agent_interfaces"), "_floatingip_agent_interfaces"))]
    fg_src += [(f"agent gateway port of {n}", p) for n, p in agent_gateways.items() if isinstance(p, dict)]
    for path, p in fg_src:
        p = f.dict(p, path)
        nid = f.str(p, "network_id", path)
        bound = p.get("binding:host_id")
        if nid != ext_net or nid in fg_ports or (bound and bound != host):
            continue
        add_subnets(p, nid, path)
        fg_ports[nid] = _port(f, p, path, DeviceOwner.AGENT_GATEWAY.value, host, host, set(subnets.get(nid, {})))

    tenant: list[str] = []
    for key, owner in (("_interfaces", DeviceOwner.ROUTER_INTERFACE_DISTRIBUTED.value),
                       ("_snat_router_interfaces", DeviceOwner.ROUTER_SNAT.value)):
        for i, p in enumerate(f.list(router.get(key), key)):
            path = f"{key}[{i}]"
            p = f.dict(p, path)
            nid = f.str(p, "network_id", path)
            add_net(nid, f.int(p, "mtu", path, 1500), False)
            add_subnets(p, nid, path)
            bound = str(p.get("binding:host_id") or "") if owner == DeviceOwner.ROUTER_SNAT.value else ""
            port = _port(f, p, path, owner, rid, bound, set(subnets.get(nid, {})))
            own.append(port)
            if owner == DeviceOwner.ROUTER_INTERFACE_DISTRIBUTED.value:
                tenant += [x.subnet_id for x in port.fixed_ips if x.subnet_id not in tenant]
    if gateway is None:
        own = [p for p in own if p.device_owner != DeviceOwner.ROUTER_SNAT.value]   # no SNAT without a gateway

    subnet_of: dict[str, Subnet] = {s.id: s for by in subnets.values() for s in by.values()}
    net_of_subnet = {s.id: s.network_id for s in subnet_of.values()}
    own_ids = {p.id for p in own}

    # the ports of the tenant subnets: neighbours, and (compute ports) what places the router here
    vm_ports: dict[str, Port] = {}
    on_subnet: dict[str, list[str]] = {}
    for sid in tenant:
        for i, p in enumerate(ports_by_subnet.get(sid, ())):
            path = f"ports of subnet {sid}[{i}]"
            p = f.dict(p, path)
            owner = str(p.get("device_owner") or "")
            pid = f.str(p, "id", path)
            if owner in ROUTER_OWNED or pid in own_ids:
                continue
            if p.get("network_id") != net_of_subnet.get(sid):
                raise f.fail(f"{path}.network_id", f"{p.get('network_id')!r} is not the network of subnet {sid}")
            here = is_compute(owner) and (local_ports is None or pid in local_ports)
            port = _port(f, p, path, owner, str(p.get("device_id") or ""), host if here else "", set(tenant))
            vm_ports.setdefault(pid, port)
            on_subnet.setdefault(sid, []).append(pid)

    fips: list[FloatingIP] = []
    skipped: dict[str, str] = {}
    ext_subnets = tuple(subnets.get(ext_net, {}).values()) if ext_net else ()
    for i, fd in enumerate(f.list(router.get("_floatingips"), "_floatingips")):
        path = f"_floatingips[{i}]"
        fd = f.dict(fd, path)
        fid = f.str(fd, "id", path)
        if fd.get("host") != host and fd.get("dest_host") != host:
            continue
        if fd.get("dvr_snat_bound"):
            skipped[fid] = "a centralized (dvr_snat_bound) floating IP: dvrnet serves FIPs on the VM's node only"
            continue
        if ext_net is None or fd.get("floating_network_id") != ext_net:
            skipped[fid] = "its network is not the router's external network"
            continue
        try:
            fip_ip = parse_ip(f"{path}.floating_ip_address", fd.get("floating_ip_address"))
            fixed = parse_ip(f"{path}.fixed_ip_address", fd.get("fixed_ip_address"))
        except DvrnetError as e:
            raise f.fail(path, str(e)) from None
        fsub = next((s for s in ext_subnets if fip_ip in s.cidr), None)
        if fsub is None:
            skipped[fid] = f"{fip_ip} is in no subnet of the external network the router knows"
            continue
        port_id = f.str(fd, "port_id", path)
        tsub = next((subnet_of[s] for s in tenant if fixed in subnet_of[s].cidr), None)
        if tsub is None:
            skipped[fid] = f"its fixed IP {fixed} is on no subnet the router has an interface on"
            continue
        details = fd.get("port_details") if isinstance(fd.get("port_details"), dict) else {}
        port = vm_ports.get(port_id)
        if port is None:
            owner = str(details.get("device_owner") or "compute:unknown")
            port = Port(id=port_id, network_id=tsub.network_id, device_owner=owner,
                        device_id=str(details.get("device_id") or ""), host=host,
                        fixed_ips=(FixedIP(tsub.id, fixed),), mac_address=_mac(f, details, f"{path}.port_details"))
            vm_ports[port_id] = port
            on_subnet.setdefault(tsub.id, []).append(port_id)
        elif port.host != host or not port.has_ip(fixed):
            port = Port(id=port.id, network_id=port.network_id, device_owner=port.device_owner,
                        device_id=port.device_id, host=host,
                        fixed_ips=port.fixed_ips if port.has_ip(fixed) else (*port.fixed_ips, FixedIP(tsub.id, fixed)),
                        mac_address=port.mac_address, name=port.name)
            vm_ports[port_id] = port
        if not is_compute(port.device_owner):
            skipped[fid] = f"its port is a {port.device_owner or 'device-less'} port, not a VM's (compute:*)"
            continue
        fips.append(FloatingIP(id=fid, floating_network_id=ext_net, floating_ip_address=fip_ip, subnet_id=fsub.id,
                               port_id=port_id, fixed_ip_address=fixed, router_id=rid,
                               description=str(fd.get("description") or "")))

    r = Router(id=rid, name=str(router.get("name") or ""), distributed=True, gateway=gateway,
               admin_state_up=bool(router.get("admin_state_up", True)))
    return RouterGraph(
        router=r, networks=networks,
        subnets={n: tuple(sorted(by.values(), key=lambda s: s.id)) for n, by in subnets.items()},
        ports_on_subnet={s: tuple(vm_ports[p] for p in sorted(set(ids))) for s, ids in on_subnet.items()},
        own_ports=tuple(own), agent_gateways=fg_ports, fips=tuple(fips), skipped_fips=skipped,
        tenant_subnet_ids=tuple(tenant))


def _check_routed_gateway(rid: str, net: str, gp: Port, subs: Mapping[str, Subnet]) -> None:
    """A gateway on a routed network needs qg-'s private address (plan/routed.py): without one the
    snat- namespace would have no address on the segment, no BGP session and no default route."""
    if any(f.subnet_id in subs and subs[f.subnet_id].routed_private for f in gp.fixed_ips):
        return
    private = sorted(s.name or s.id for s in subs.values() if s.routed_private)
    have = ", ".join(str(f.ip_address) for f in gp.fixed_ips)
    hint = (f"set it with `openstack router set --external-gateway {net} --fixed-ip subnet={private[0]} "
            f"--fixed-ip subnet=PUBLIC {rid}`" if private else
            f"the network has no subnet typed {' or '.join(sorted(ROUTED_PRIVATE_SERVICE_TYPES))}")
    raise Refused(rid, f"the gateway on routed network {net} (tag {ROUTED_TAG}) has no address in a private "
                       f"subnet (it has {have}): {hint}")


def cloud_of(host: str, mode: AgentMode | str, graphs: Iterable[RouterGraph], revision: int = 0) -> Cloud:
    """The host's Cloud from the graphs of the routers it serves, in the order they were fetched
    (oldest first): what several graphs share (a network, its subnets, a tenant subnet's ports,
    an external network's fg- port) is taken from the newest graph that brought it, so a subnet
    removed from an external network is gone as soon as any router on it was fetched again."""
    networks: dict[str, Network] = {}
    subnets_of: dict[str, tuple[Subnet, ...]] = {}
    ports_on: dict[str, tuple[Port, ...]] = {}
    fg: dict[str, Port] = {}
    routers: dict[str, Router] = {}
    own: dict[str, tuple[Port, ...]] = {}
    fips: dict[str, tuple[FloatingIP, ...]] = {}
    for g in graphs:
        networks.update(g.networks)
        subnets_of.update(g.subnets)
        ports_on.update(g.ports_on_subnet)
        fg.update(g.agent_gateways)
        routers[g.router.id] = g.router
        own[g.router.id] = g.own_ports
        fips[g.router.id] = g.fips
    subnets = {s.id: s for subs in subnets_of.values() for s in subs}
    ports: dict[str, Port] = {}
    for sid, ps in ports_on.items():
        if sid in subnets:
            for p in ps:
                ports[p.id] = p
    for ps in own.values():
        for p in ps:
            ports[p.id] = p
    for net, p in fg.items():
        if net in networks:
            ports[p.id] = p
    all_fips = {f.id: f for fs in fips.values() for f in fs}
    return Cloud(networks=networks, subnets=subnets, routers=routers, ports=ports, floatingips=all_fips,
                 hosts={host: Host(host, AgentMode(str(mode)))}, revision=revision)


def fip_addresses(graph: RouterGraph) -> dict[str, IPv4Address]:
    return {f.id: f.floating_ip_address for f in graph.fips}

"""Neutron's DVR server side effects on the Workspace's tables (`ops.store.Store`): the ports the
server makes for routers and hosts, and where their SNAT runs.

The Workspace calls these inside its transaction (so a failure here rolls the whole operation
back) and after checking its inputs; this module keeps true:
- a router's external gateway is one `network:router_gateway` port (device_id = router id) whose
  host is the router's SNAT host: the `dvr_snat` host with the fewest gateway ports, ties by name;
  "" while there is none (`schedule_unhosted` places them when a `dvr_snat` host registers). The
  router's `external_fixed_ips` are that port's addresses (`sync_gateway_info`); on a routed
  network (tag `dvrnet:routed`) a gateway set without addresses gets qg-'s private address and a
  public SNAT /32 (`Allocator.pick_routed_gateway`);
- a distributed router with a gateway has one `network:router_centralized_snat` port per
  interface subnet (device_id = router id, host = the SNAT host), made and removed with the
  gateway and the interfaces (`sync_snat_ports`);
- after every change the `network:floatingip_agent_gateway` ports (device_id = host = host name)
  are exactly `placement.hosts_needing_agent_gateway` (`settle_agent_gateways`); an existing one
  keeps its addresses (nothing is renumbered when subnets are added or another router goes), and
  one left with no address by a subnet delete gets a new one when some subnet can serve it.
Ports are made through the Workspace's `new_port` (its ids and MACs), in the order the side
effects happen, so deterministic id factories give the same ids as before this module existed.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import replace

from ..ipam import IpRequest
from ..model import AgentMode, DeviceOwner, ExternalGateway, FixedIP, IpAddressGenerationFailure, Port, Router
from ..model.placement import hosts_needing_agent_gateway
from ..model.resources import ROUTER_INTERFACE_OWNERS
from .errors import RouterExternalGatewayInUseByFloatingIp
from .store import Store

AGW = DeviceOwner.AGENT_GATEWAY.value
GW = DeviceOwner.ROUTER_GATEWAY.value
SNAT = DeviceOwner.ROUTER_SNAT.value

# new_port(network_id, owner, device_id, host, fixed_ips, hint) -> the port, stored
NewPort = Callable[[str, str, str, str, tuple[FixedIP, ...], str], Port]


class Dvr:
    def __init__(self, st: Store, new_port: NewPort):
        self._st = st
        self._new_port = new_port

    # ---- lookups ---------------------------------------------------------------------------
    def ports_of(self, device_id: str, owners: Iterable[str]) -> list[Port]:
        owners = set(owners)
        st = self._st
        return sorted((st.ports[i] for i in st.ports_by_device.get(device_id, ())
                       if st.ports[i].device_owner in owners), key=lambda p: p.id)

    def gateway_port(self, router_id: str) -> Port | None:
        ps = self.ports_of(router_id, (GW,))
        return ps[0] if ps else None

    def interfaces(self, router_id: str) -> list[Port]:
        return self.ports_of(router_id, ROUTER_INTERFACE_OWNERS)

    # ---- SNAT scheduling -------------------------------------------------------------------
    def pick_snat_host(self) -> str:
        st = self._st
        snat_hosts = sorted(h.name for h in st.hosts.values() if h.mode is AgentMode.DVR_SNAT)
        if not snat_hosts:
            return ""
        load = {h: 0 for h in snat_hosts}
        for i in st.ports_by_owner.get(GW, ()):
            h = st.ports[i].host
            if h in load:
                load[h] += 1
        return min(snat_hosts, key=lambda h: (load[h], h))

    def schedule_unhosted(self) -> None:
        """Give every gateway without a SNAT host one (a `dvr_snat` host has just registered)."""
        st = self._st
        for gw in sorted((st.ports[i] for i in st.ports_by_owner.get(GW, ())), key=lambda p: p.device_id):
            if not gw.host and gw.device_id in st.routers:
                st.put("port", replace(gw, host=self.pick_snat_host()))
                self.sync_snat_ports(gw.device_id)

    # ---- router gateways -------------------------------------------------------------------
    def set_gateway(self, router: Router, net_id: str, reqs: list[IpRequest] | None, snat: bool) -> None:
        """Make ROUTER's gateway port on NET_ID (the request already checked) and its SNAT ports."""
        st = self._st
        if reqs is None and st.networks[net_id].routed:
            # routed mode (issue 15): qg-'s private address and the router's public SNAT /32
            fixed: tuple[FixedIP, ...] = st.allocator.pick_routed_gateway(net_id)
        else:
            fixed = st.allocator.pick(net_id, GW, reqs, field="external_fixed_ips")
        port = self._new_port(net_id, GW, router.id, self.pick_snat_host(), fixed, net_id)
        st.put("router", replace(router, gateway=ExternalGateway(net_id, port.fixed_ips, snat)))
        self.sync_snat_ports(router.id)

    def change_gateway(self, router: Router, net_id: str, reqs: list[IpRequest] | None, snat: bool) -> None:
        """ROUTER keeps its gateway network: new addresses (if asked) and `enable_snat`."""
        st = self._st
        assert router.gateway is not None
        gw = self.gateway_port(router.id)
        if gw is not None and reqs is not None:
            fixed = st.allocator.pick(net_id, GW, reqs, field="external_fixed_ips",
                                      keep=(f.ip_address for f in gw.fixed_ips))
            gw = replace(gw, fixed_ips=fixed)
            st.put("port", gw)
        fixed = gw.fixed_ips if gw is not None else router.gateway.external_fixed_ips
        st.put("router", replace(router, gateway=ExternalGateway(net_id, fixed, snat)))

    def unset_gateway(self, router: Router) -> None:
        st = self._st
        assert router.gateway is not None
        fips = sorted(st.fips_by_router.get(router.id, ()))
        if fips:
            raise RouterExternalGatewayInUseByFloatingIp(
                f"The gateway of router {router.id} cannot be removed or changed: floating IPs "
                f"{', '.join(fips)} on external network {router.gateway.network_id} reach their ports through it.")
        gw = self.gateway_port(router.id)
        if gw is not None:
            st.drop("port", gw.id)
        st.put("router", replace(router, gateway=None))
        self.sync_snat_ports(router.id)

    def drop_router_ports(self, router_id: str) -> None:
        """The gateway and SNAT ports of a router that goes (it has no interfaces left)."""
        for p in self.ports_of(router_id, (GW, SNAT)):
            self._st.drop("port", p.id)

    def sync_gateway_info(self, router_id: str) -> None:
        r = self._st.routers[router_id]
        gw = self.gateway_port(router_id)
        if r.gateway is not None and gw is not None and gw.fixed_ips != r.gateway.external_fixed_ips:
            self._st.put("router", replace(r, gateway=replace(r.gateway, external_fixed_ips=gw.fixed_ips)))

    def sync_snat_ports(self, router_id: str) -> None:
        """One centralized-SNAT port per interface subnet of a distributed router with a gateway."""
        st = self._st
        r = st.routers.get(router_id)
        gw = self.gateway_port(router_id)
        want: set[str] = set()
        if r is not None and r.distributed and r.gateway is not None:
            want = {f.subnet_id for p in self.interfaces(router_id) for f in p.fixed_ips}
        host = gw.host if gw is not None else ""
        have: set[str] = set()
        for p in self.ports_of(router_id, (SNAT,)):
            sids = {f.subnet_id for f in p.fixed_ips}
            if not sids or not sids <= want or sids & have:
                st.drop("port", p.id)
                continue
            have |= sids
            if p.host != host:
                st.put("port", replace(p, host=host))
        for sid in sorted(want - have):
            s = st.subnets[sid]
            fixed = st.allocator.pick(s.network_id, SNAT, [IpRequest(subnet_id=sid)])
            self._new_port(s.network_id, SNAT, router_id, host, fixed, sid)

    # ---- agent-gateway ports ---------------------------------------------------------------
    def settle_agent_gateways(self) -> None:
        """Exactly one agent-gateway port per `hosts_needing_agent_gateway` pair, each with an
        address when a subnet can serve it. The pairs are settled only when the placement may have
        moved (`placement_dirty`); otherwise a write looks only at the agent-gateway ports still
        without an address (the store's `bare_agent_gateways` index: none, usually)."""
        st = self._st
        if st.placement_dirty:
            existing: dict[tuple[str, str], Port] = {}
            for i in sorted(st.ports_by_owner.get(AGW, ())):
                p = st.ports[i]
                if (p.device_id, p.network_id) in existing:
                    st.drop("port", p.id)          # a duplicate (only possible in a loaded Cloud)
                else:
                    existing[(p.device_id, p.network_id)] = p
            needed = hosts_needing_agent_gateway(_Tables(self))
            for key in sorted(set(existing) - needed):
                st.drop("port", existing.pop(key).id)
            for host, net in sorted(needed - set(existing)):
                try:
                    fixed = st.allocator.pick(net, AGW, None)
                except IpAddressGenerationFailure as e:
                    raise type(e)(f"Cannot make the agent gateway port of host {host} on external network "
                                  f"{net}: {e.message}") from None
                self._new_port(net, AGW, host, host, fixed, net)
            st.placement_dirty = False
        bare = [st.ports[i] for i in st.bare_agent_gateways]
        for p in sorted(bare, key=lambda p: (p.device_id, p.network_id)):
            try:
                fixed = st.allocator.pick(p.network_id, AGW, None)
            except IpAddressGenerationFailure:
                continue   # stays without an address until a subnet can serve it
            st.put("port", replace(p, fixed_ips=fixed))


class _Tables:
    """The tables of this transaction as `placement.PlacementSource` (the one placement reads them)."""

    def __init__(self, dvr: Dvr):
        self.dvr = dvr
        self.routers = dvr._st.routers
        self.hosts = dvr._st.hosts
        self.compute_subnets_by_host = dvr._st.compute_subnets_by_host

    def router_interfaces(self, router_id: str) -> tuple[Port, ...]:
        return tuple(self.dvr.interfaces(router_id))

    def gateway_port(self, router_id: str) -> Port | None:
        return self.dvr.gateway_port(router_id)

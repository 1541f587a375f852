"""A small accumulator for one namespace's desired state; `freeze()` returns the frozen value.

Adding the same object twice is harmless; adding two different objects under one kernel key is a
planning bug and raises, so the planner can never emit contradictory state.

IPv6 is off on everything dvrnet creates (it is IPv4-only, and an IPv6 link-local address on a
port whose MAC is shared between nodes — the distributed gateway's `qr-` — sends neighbour
discovery from that MAC across the fabric): a managed namespace gets
`net.ipv6.conf.{all,default}.disable_ipv6 = 1` (set before its links are created: reconcile/diff.py
runs namespace-wide sysctls first, so devices are born without IPv6), and every link planned in any
namespace gets `net.ipv6.conf.<dev>.disable_ipv6 = 1` (the only way in a namespace dvrnet does not
own, and what verify reads back per device).
`host` is the host the state is planned for: it salts the MACs dvrnet derives for its own devices
(plan/plug.py), so no two nodes share one.
"""
from __future__ import annotations

from .state import Address, Link, Namespace, Neighbour, NftTable, OvsPort, Process, Route, Rule

IPV6_OFF = "1"


class PlanConflict(ValueError):
    pass


class NsBuilder:
    def __init__(self, name: str, managed: bool = True, host: str = ""):
        self.name = name
        self.managed = managed
        self.host = host
        self.links: dict[str, Link] = {}
        self.addresses: dict[tuple[str, str], Address] = {}
        self.routes: dict[tuple[int, str, int], Route] = {}
        self.rules: set[Rule] = set()
        self.neighbours: dict[tuple[str, str], Neighbour] = {}
        self.sysctls: dict[str, str] = {}
        self.nft: dict[tuple[str, str], NftTable] = {}
        self.processes: dict[str, Process] = {}
        self.ovs_ports: dict[str, OvsPort] = {}
        self.used = False            # part of the desired state even without links (macvlan plugs)
        if managed:
            for scope in ("all", "default"):
                self.sysctls[f"net.ipv6.conf.{scope}.disable_ipv6"] = IPV6_OFF

    def _put(self, store: dict, key, value, what: str) -> None:
        old = store.get(key)
        if old is not None and old != value:
            raise PlanConflict(f"{self.name}: two different {what} for {key}: {old} and {value}")
        store[key] = value

    def link(self, link: Link) -> None:
        self._put(self.links, link.name, link, "links")
        self.sysctl(f"net.ipv6.conf.{link.name}.disable_ipv6", IPV6_OFF)

    def address(self, a: Address) -> None:
        self._put(self.addresses, (a.dev, a.ip), a, "addresses")

    def route(self, r: Route) -> None:
        self._put(self.routes, r.key, r, "routes")

    def rule(self, r: Rule) -> None:
        self.rules.add(r)

    def neighbour(self, n: Neighbour) -> None:
        self._put(self.neighbours, (n.dev, n.ip), n, "neighbours")

    def sysctl(self, key: str, value: str | int) -> None:
        self._put(self.sysctls, key, str(value), "sysctl values")

    def table(self, t: NftTable) -> None:
        self._put(self.nft, (t.family, t.name), t, "nft tables")

    def process(self, p: Process) -> None:
        self._put(self.processes, p.role, p, "processes")

    def ovs_port(self, p: OvsPort) -> None:
        self._put(self.ovs_ports, p.name, p, "OVS ports")

    def freeze(self) -> Namespace:
        return Namespace(
            name=self.name,
            links=dict(sorted(self.links.items())),
            addresses=frozenset(self.addresses.values()),
            routes=frozenset(self.routes.values()),
            rules=frozenset(self.rules),
            neighbours=frozenset(self.neighbours.values()),
            sysctls=dict(sorted(self.sysctls.items())),
            nft=dict(sorted(self.nft.items())),
            managed=self.managed,
            processes=dict(sorted(self.processes.items())),
            ovs_ports=dict(sorted(self.ovs_ports.items())),
        )

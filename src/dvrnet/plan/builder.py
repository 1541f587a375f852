"""A small accumulator for one namespace's desired state; `freeze()` returns the frozen value.

Adding the same object twice is harmless; adding two different objects under one kernel key is a
planning bug and raises, so the planner can never emit contradictory state.
"""
from __future__ import annotations

from .state import Address, Link, Namespace, Neighbour, NftTable, Route, Rule


class PlanConflict(ValueError):
    pass


class NsBuilder:
    def __init__(self, name: str, managed: bool = True):
        self.name = name
        self.managed = managed
        self.links: dict[str, Link] = {}
        self.addresses: dict[tuple[str, str], Address] = {}
        self.routes: dict[tuple[int, str, int], Route] = {}
        self.rules: set[Rule] = set()
        self.neighbours: dict[tuple[str, str], Neighbour] = {}
        self.sysctls: dict[str, str] = {}
        self.nft: dict[tuple[str, str], NftTable] = {}
        self.used = False            # part of the desired state even without links (macvlan plugs)

    def _put(self, store: dict, key, value, what: str) -> None:
        old = store.get(key)
        if old is not None and old != value:
            raise PlanConflict(f"{self.name}: two different {what} for {key}: {old} and {value}")
        store[key] = value

    def link(self, link: Link) -> None:
        self._put(self.links, link.name, link, "links")

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
        )

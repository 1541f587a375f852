"""`TrackedView`: a `Cloud` as incremental computations see it, recording every key they read.

Each collection and index of the cloud is offered as a read-only mapping that answers one key at
a time (`get`, `[]`, `in`; no iteration) and, when a `reads` set is given, adds `(name, key)` to it
for every key asked — whether it was there or not, so a key that appears later is noticed. The
names are the `Cloud` attribute names, i.e. the vocabulary of `changeset.apply`'s touched keys: a
computation whose recorded reads meet no touched key would read the same values again.
The lookups (`Lookups`: `router_interfaces`, `gateway_port`, ...) are `Cloud`'s own methods, over
these mappings, so they are recorded too.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .cloud import INDEXES, Cloud, Lookups

NAMES = ("networks", "subnets", "routers", "ports", "floatingips", "hosts",
         *(s.name for s in INDEXES), "compute_subnets_by_host")    # what TrackedView offers


class Tracked:
    """A read-only mapping answering from GETTER, recording (NAME, key) for every key asked."""
    __slots__ = ("getter", "name", "reads")

    def __init__(self, name: str, getter: Callable[[Any], Any], reads: set | None):
        self.name, self.getter, self.reads = name, getter, reads

    def get(self, k, default=None):
        if self.reads is not None:
            self.reads.add((self.name, k))
        v = self.getter(k)
        return default if v is None else v

    def __getitem__(self, k):
        if self.reads is not None:
            self.reads.add((self.name, k))
        v = self.getter(k)
        if v is None:
            raise KeyError(k)
        return v

    def __contains__(self, k) -> bool:
        return self.get(k) is not None


class TrackedView(Lookups):
    """CLOUD's collections and indexes as `Tracked` mappings (READS None: nothing recorded)."""

    def __init__(self, cloud: Cloud, reads: set | None):
        c = cloud
        self.networks = Tracked("networks", c.networks.get, reads)
        self.subnets = Tracked("subnets", c.subnets.get, reads)
        self.routers = Tracked("routers", c.routers.get, reads)
        self.ports = Tracked("ports", c.ports.get, reads)
        self.floatingips = Tracked("floatingips", c.floatingips.get, reads)
        self.hosts = Tracked("hosts", c.hosts.get, reads)
        self.subnets_by_network = Tracked("subnets_by_network", c.subnets_by_network.get, reads)
        self.ports_by_device = Tracked("ports_by_device", c.ports_by_device.get, reads)
        self.ports_by_subnet = Tracked("ports_by_subnet", c.ports_by_subnet.get, reads)
        self.fips_by_port = Tracked("fips_by_port", c.fips_by_port.get, reads)
        self.fips_by_router = Tracked("fips_by_router", c.fips_by_router.get, reads)
        self.compute_subnets_by_host = Tracked("compute_subnets_by_host", c.compute_subnets_by_host.get, reads)

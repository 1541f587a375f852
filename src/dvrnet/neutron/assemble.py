"""`Assembly`: the host's Cloud from the routers' graphs, kept as one model that each change of
routers turns into the next by a ChangeSet (`model.changeset.apply`), never rebuilt whole.

What the model holds is exactly `translate.cloud_of(host, mode, graphs ordered by fetch)`: that
function stays the definition (and the tests compare against it); this module computes the same
value change by change. The rules, from cloud_of:
- a network, a network's subnet list, a tenant subnet's ports and an external network's fg- port
  are *groups* that several routers' graphs may bring; each is taken from the newest graph
  (latest fetch) that brings it — so a subnet dropped from an external network is gone as soon as
  any router on it is fetched again;
- a tenant subnet's ports are in the model only while the subnet is, an fg- port only while its
  network is; for a port id brought several ways, fg- wins over a router's own port, which wins
  over a neighbour from get_ports_by_subnet;
- routers and their FIPs belong to one graph each.

`update(graphs, order, changed)`: CHANGED are the router ids whose graph was added, replaced or
dropped (GRAPHS/ORDER are the source's, after the change). The keys that may change are those the
changed routers' old and new graphs bring, closed over the groups they touch (every subnet listed
for a touched network by any graph, every fg- port of a touched network, every port of a touched
subnet); each is recomputed by the rules above from the graphs that bring it (indexes kept here:
key -> routers bringing it, group -> routers bringing it). That ChangeSet
(`changeset_replacing(cloud, affected keys, their new values)`) is applied: the cost of a change
is the size of the routers and groups it touches, not of the cloud. Returns the touched keys of
`apply` (what `agent.view.View.touched` carries). A ChangeSet the model's validation refuses
(a payload cloud_of would have accepted as it is) makes the model a snapshot again: `cloud_of`,
touched None, logged.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping

from ..model import Cloud
from ..model.changeset import Key, apply, changeset_replacing
from ..model.errors import InvalidInput
from ..model.resources import AgentMode, Host
from .translate import RouterGraph, cloud_of

log = logging.getLogger("dvrnet.neutron")

Group = tuple[str, str]         # ("net"|"subnets"|"on"|"fg", network or subnet id)


def _contributions(g: RouterGraph) -> tuple[frozenset[Key], frozenset[Group]]:
    """The keys and the groups one graph brings."""
    keys: set[Key] = {("routers", g.router.id)}
    groups: set[Group] = set()
    for nid in g.networks:
        keys.add(("networks", nid))
        groups.add(("net", nid))
    for nid, subs in g.subnets.items():
        groups.add(("subnets", nid))
        keys.update(("subnets", s.id) for s in subs)
    for sid, ps in g.ports_on_subnet.items():
        groups.add(("on", sid))
        keys.update(("ports", p.id) for p in ps)
    keys.update(("ports", p.id) for p in g.own_ports)
    for nid, p in g.agent_gateways.items():
        groups.add(("fg", nid))
        keys.add(("ports", p.id))
    keys.update(("floatingips", f.id) for f in g.fips)
    return frozenset(keys), frozenset(groups)


class Assembly:
    def __init__(self, host: str, mode: AgentMode | str):
        self.host = host
        self.mode = AgentMode(str(mode))
        self.cloud: Cloud | None = None
        self._graphs: dict[str, RouterGraph] = {}       # the graphs the model was made of
        self._contrib: dict[str, tuple[frozenset[Key], frozenset[Group]]] = {}
        self._key_holders: dict[Key, set[str]] = {}
        self._group_holders: dict[Group, set[str]] = {}
        self._order: Mapping[str, int] = {}
        self.applied = 0            # changes applied as ChangeSets
        self.snapshots = 0          # models made whole (first, or after a refused ChangeSet)

    # ---- the indexes ------------------------------------------------------------------------
    def _index(self, rid: str, g: RouterGraph | None) -> None:
        old = self._contrib.pop(rid, None)
        if old is not None:
            for k in old[0]:
                hs = self._key_holders.get(k)
                if hs is not None:
                    hs.discard(rid)
                    if not hs:
                        del self._key_holders[k]
            for grp in old[1]:
                hs = self._group_holders.get(grp)
                if hs is not None:
                    hs.discard(rid)
                    if not hs:
                        del self._group_holders[grp]
        self._graphs.pop(rid, None)
        if g is None:
            return
        c = _contributions(g)
        self._contrib[rid] = c
        self._graphs[rid] = g
        for k in c[0]:
            self._key_holders.setdefault(k, set()).add(rid)
        for grp in c[1]:
            self._group_holders.setdefault(grp, set()).add(rid)

    def _newest(self, rids: Iterable[str]) -> RouterGraph | None:
        best = max(rids, key=lambda r: self._order.get(r, 0), default=None)
        return None if best is None else self._graphs[best]

    def _winner(self, grp: Group) -> RouterGraph | None:
        return self._newest(self._group_holders.get(grp, ()))

    # ---- values, by cloud_of's rules -----------------------------------------------------------
    def _subnets_of(self, nid: str) -> dict:
        g = self._winner(("subnets", nid))
        return {} if g is None else {s.id: s for s in g.subnets[nid]}

    def _value(self, key: Key):
        kind, i = key
        holders = self._key_holders.get(key, ())
        if kind == "hosts":
            return Host(self.host, self.mode) if i == self.host else None
        if not holders:
            return None
        if kind == "routers":
            return self._graphs[i].router
        if kind == "floatingips":
            g = self._newest(holders)
            return next((f for f in g.fips if f.id == i), None) if g is not None else None
        if kind == "networks":
            g = self._winner(("net", i))
            return None if g is None else g.networks[i]
        if kind == "subnets":
            for nid in {s.network_id for r in holders for subs in self._graphs[r].subnets.values()
                        for s in subs if s.id == i}:
                s = self._subnets_of(nid).get(i)
                if s is not None:
                    return s
            return None
        # ports: fg- first, then a router's own port, then a neighbour of a subnet in the model
        gs = [self._graphs[r] for r in holders]
        for nid in {n for g in gs for n, p in g.agent_gateways.items() if p.id == i}:
            w = self._winner(("fg", nid))
            if w is not None and ("net", nid) in self._group_holders and w.agent_gateways[nid].id == i:
                return w.agent_gateways[nid]
        own = [g for g in gs if any(p.id == i for p in g.own_ports)]
        if own:
            g = max(own, key=lambda g: self._order.get(g.router.id, 0))
            return next(p for p in g.own_ports if p.id == i)
        found = None
        for sid in sorted({s for g in gs for s, ps in g.ports_on_subnet.items() if any(p.id == i for p in ps)},
                          key=lambda s: self._order.get(self._winner(("on", s)).router.id, 0)):
            w = self._winner(("on", sid))
            if w is None or not self._subnet_in_model(sid):
                continue
            p = next((p for p in w.ports_on_subnet[sid] if p.id == i), None)
            if p is not None:
                found = p               # the newest subnet's copy, as cloud_of's dict update keeps
        return found

    def _subnet_in_model(self, sid: str) -> bool:
        return self._value(("subnets", sid)) is not None

    # ---- a change ---------------------------------------------------------------------------------
    def update(self, graphs: Mapping[str, RouterGraph], order: Mapping[str, int],
               changed: Iterable[str], revision: int) -> frozenset[Key] | None:
        """Bring the model to GRAPHS after CHANGED routers changed; the touched keys (None: the
        model was made whole)."""
        changed = set(changed)
        self._order = dict(order)
        if self.cloud is None:
            return self._snapshot(graphs, order, revision)
        affected: set[Key] = set()
        groups: set[Group] = set()
        for rid in changed:
            old = self._contrib.get(rid)
            if old is not None:
                affected |= old[0]
                groups |= old[1]
            self._index(rid, graphs.get(rid))
            new = self._contrib.get(rid)
            if new is not None:
                affected |= new[0]
                groups |= new[1]
        nets = {i for k, i in affected if k == "networks"} | {i for k, i in groups if k in ("net", "subnets", "fg")}
        for nid in nets:
            affected.add(("networks", nid))
            for r in self._group_holders.get(("subnets", nid), ()):
                affected.update(("subnets", s.id) for s in self._graphs[r].subnets[nid])
            for r in self._group_holders.get(("fg", nid), ()):
                affected.add(("ports", self._graphs[r].agent_gateways[nid].id))
        sids = {i for k, i in affected if k == "subnets"} | {i for k, i in groups if k == "on"}
        for sid in sids:
            for r in self._group_holders.get(("on", sid), ()):
                affected.update(("ports", p.id) for p in self._graphs[r].ports_on_subnet[sid])
        values = [v for v in (self._value(k) for k in sorted(affected)) if v is not None]
        cs = changeset_replacing(self.cloud, affected, values, revision=revision)
        try:
            cloud, touched = apply(self.cloud, cs)
        except InvalidInput as e:
            log.warning("the change of routers %s does not apply to the model (%s): made whole again",
                        ", ".join(sorted(changed)), e)
            return self._snapshot(graphs, order, revision)
        self.cloud = cloud
        self.applied += 1
        return touched

    def _snapshot(self, graphs: Mapping[str, RouterGraph], order: Mapping[str, int], revision: int) -> None:
        for rid in list(self._contrib):
            self._index(rid, None)
        for rid, g in graphs.items():
            self._index(rid, g)
        ordered = [graphs[r] for r in sorted(graphs, key=lambda r: order.get(r, 0))]
        self.cloud = cloud_of(self.host, self.mode, ordered, revision=revision)
        self.snapshots += 1

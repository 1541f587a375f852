"""What the kernel read means for Open vSwitch ports: an overlay on the observed state.

The namespace reader (`read.py`) sees devices; this adds what only OVS knows, from one read of
the switch's database (`ovs.read_ports`) and two ethtool values per concerned device:
- the switch's namespace gets `ovs_ports` (every port on every bridge, foreign ones included)
  and each of its devices that is a system port of a bridge gets `Link.ovs` = that bridge;
- in every other namespace, a `tun` device named like an internal port of the switch is that
  port moved there: kind "ovs", `peer_netns`/`peer` = the switch's namespace and bridge, and
  `carrier` False when it carries nothing — no carrier (ovs-vswitchd, which held it, is gone),
  or a tap of that name back in the switch's namespace (a restarted ovs-vswitchd made a new one);
- a device whose desired `tx_csum` is set gets its transmit checksum offload read back.

Invariants:
- Pure where it decides (`annotate`); `OvsObserver` does the reads and keeps, per namespace, the
  result for the same input object and inputs, so an unchanged namespace stays the same object
  from pass to pass (the diff memo matches it).
- The database is read again on every full read, when the switch's namespace or a namespace
  holding one of its ports was read again (a link event there: taps appearing, carrier lost),
  and after dvrnet changed OVS; changes made to the database by others are seen at the next full
  read.
- An unreadable database never reads as an empty switch: the switch's namespace and every
  namespace where an internal port is desired or a tap was seen are reported unreadable, so
  nothing of them is changed until it can be read.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

from dvrnet.plan.state import HostState, Namespace, OvsPort

from . import ethtool, netns
from .ovs import OvsError, Switch, read_ports


def annotate(ns: Namespace, sw_netns: str, rows: Mapping[str, OvsPort], fresh: frozenset[str],
             carrier: Mapping[str, bool], tx: Mapping[str, bool]) -> Namespace:
    """NS as OVS sees it (module docstring). FRESH: the internal ports' taps present in the
    switch's namespace; CARRIER, TX: ethtool values by device. Returns NS itself when nothing
    changes."""
    links = dict(ns.links)
    changed = False
    for name, lk in ns.links.items():
        new = lk
        row = rows.get(name)
        if ns.name == sw_netns:
            if row is not None and row.type == "" and lk.ovs != row.bridge:
                new = replace(new, ovs=row.bridge)
        elif row is not None and row.type == "internal" and lk.kind == "tun":
            new = replace(new, kind="ovs", peer_netns=sw_netns, peer=row.bridge,
                          carrier=carrier.get(name, True) and name not in fresh)
        if name in tx and new.tx_csum != tx[name]:
            new = replace(new, tx_csum=tx[name])
        if new is not lk:
            links[name], changed = new, True
    ports = dict(rows) if ns.name == sw_netns else ns.ovs_ports
    if ns.name == sw_netns and ports != ns.ovs_ports:
        changed = True
    if not changed:
        return ns
    return replace(ns, links=links, ovs_ports=ports)


def _carrier_devs(ns: Namespace, sw_netns: str, rows: Mapping[str, OvsPort]) -> list[str]:
    if ns.name == sw_netns:
        return []
    return sorted(n for n, lk in ns.links.items()
                  if lk.kind == "tun" and (r := rows.get(n)) is not None and r.type == "internal")


def _tx_devs(ns: Namespace, want: Namespace | None) -> list[str]:
    if want is None:
        return []
    return sorted(n for n, lk in want.links.items() if lk.tx_csum is not None and n in ns.links)


@dataclass
class _Memo:
    source: Namespace                  # the reader's object this result was made from
    key: tuple
    value: Namespace


class OvsObserver:
    def __init__(self, sw: Switch) -> None:
        self.sw = sw
        self.rows: dict[str, OvsPort] | None = None
        self.dirty = True
        self.reads = 0                             # database reads (tests, benchmarks)
        self._memo: dict[str, _Memo] = {}

    def applied(self, ops: Iterable) -> None:
        if any(getattr(op, "tool", "") == "ovs" for op in ops):
            self.dirty = True

    def invalidate(self) -> None:
        self.rows, self.dirty = None, True
        self._memo.clear()

    def _relevant(self, state: HostState, desired: HostState) -> set[str]:
        out = {self.sw.netns}
        for st in (state, desired):
            for n, ns in st.namespaces.items():
                if any(lk.kind in ("tun", "ovs") for lk in ns.links.values()):
                    out.add(n)
        return out

    def annotate(self, desired: HostState, state: HostState, unreadable: dict[str, str],
                 reread: set[str] | None, full: bool) -> HostState:
        """STATE with the OVS overlay. READ: the namespaces read again in this pass (None: all).
        Namespaces that cannot be judged are added to UNREADABLE."""
        sw = self.sw
        relevant = self._relevant(state, desired)
        if self.rows is None or full or reread is None or self.dirty or (reread & relevant):
            try:
                rows = read_ports(sw)
            except OvsError as e:
                self.invalidate()
                for n in relevant:
                    unreadable.setdefault(n, f"cannot read Open vSwitch ({sw.db}): {e}")
                return state
            self.reads += 1
            self.dirty = False
            if rows != self.rows:                  # equal rows keep their object: memo keys match
                self.rows = rows
        rows = self.rows
        bridge = state.namespaces.get(sw.netns)
        fresh = frozenset(n for n, lk in (bridge.links.items() if bridge is not None else ())
                          if lk.kind == "tun" and (r := rows.get(n)) is not None and r.type == "internal")
        out: dict[str, Namespace] = {}
        for n, ns in state.namespaces.items():
            cd, td = _carrier_devs(ns, sw.netns, rows), _tx_devs(ns, desired.namespaces.get(n))
            key = (id(rows), fresh, tuple(cd), tuple(td))
            m = self._memo.get(n)
            if m is not None and m.source is ns and m.key == key:
                out[n] = m.value
                continue
            car: dict[str, bool] = {}
            tx: dict[str, bool] = {}
            if cd or td:
                try:
                    car, tx = ethtool.read(n, cd, td)
                except netns.MissingNamespace:
                    pass                             # deleted while we read: diff sees it gone
                except OSError as e:
                    unreadable.setdefault(n, f"cannot read ethtool settings: {e}")
            out[n] = annotate(ns, sw.netns, rows, fresh, car, tx)
            self._memo[n] = _Memo(ns, key, out[n])
        for n in [n for n in self._memo if n not in state.namespaces]:
            del self._memo[n]
        if sw.netns not in out and rows:
            # the switch's namespace was not read (nothing is desired there): its ports still count
            out[sw.netns] = Namespace(sw.netns, managed=False, ovs_ports=dict(rows))
        if len(out) == len(state.namespaces) and all(out[n] is ns for n, ns in state.namespaces.items()):
            return state
        return HostState(state.host, out)

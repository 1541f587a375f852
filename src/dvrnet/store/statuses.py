"""The agents' status reports: what each host's agent last found in its kernel, per FIP and per
router gateway port it serves (table `agent_statuses`, migration 0005).

A row `(host, kind, resource_id)` says: at view revision `revision`, HOST's agent found the
resource `status` ("ACTIVE": in the kernel as planned, read back after the pass; "ERROR": not
there, `reason` says why) *for the association it applied*: for a FIP its `port_id` and fixed IP
(`addresses`), for a gateway port its addresses. The server shows a status only while that
association is still the current one (api/status.py), so a report about an older association
never makes a new one look ACTIVE.

Invariants:
- reports are written by `write_report` in a transaction of their own: no cloud revision, no
  change log row, no listener called, so no agent's long-poll is woken by them (docs/feed.md:
  writes that only report agent state wake nobody); each report bumps `revision` row 2 (the
  reports' generation), which readers compare to reuse their cached `Statuses`;
- one report is atomic: its removals and upserts commit together or not at all;
- rows of a host whose agent dies stay as they were (Neutron keeps the last statuses too).
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from . import tables as t

KINDS = ("floatingips", "ports")
STATUSES = ("ACTIVE", "ERROR")
GENERATION_ROW = 2          # row of the `revision` table holding the reports' generation


@dataclass(frozen=True)
class Reported:
    """One resource as one host's agent last reported it."""
    host: str
    kind: str
    id: str
    status: str
    port_id: str | None
    addresses: tuple[str, ...]
    revision: int
    reason: str | None
    reported_at: str = ""

    def json(self) -> dict:
        out: dict = {"id": self.id, "status": self.status, "reason": self.reason, "revision": self.revision,
                     "reported_at": self.reported_at}
        if self.kind == "floatingips":
            out["port_id"] = self.port_id
            out["fixed_ip_address"] = self.addresses[0] if self.addresses else None
        else:
            out["fixed_ips"] = list(self.addresses)
        return out


@dataclass(frozen=True)
class Statuses:
    """Every report row, by resource: (kind, id) -> host -> Reported; `generation` identifies it."""
    generation: int = -1
    by_resource: Mapping[tuple[str, str], Mapping[str, Reported]] = field(default_factory=dict)

    def of(self, kind: str, id_: str, host: str) -> Reported | None:
        return self.by_resource.get((kind, id_), {}).get(host)

    def of_host(self, host: str) -> list[Reported]:
        return sorted((r for rows in self.by_resource.values() for h, r in rows.items() if h == host),
                      key=lambda r: (r.kind, r.id))


NO_STATUSES = Statuses()


def generation(c: Connection) -> int:
    v = c.execute(sa.select(t.revision.c.value).where(t.revision.c.id == GENERATION_ROW)).scalar_one_or_none()
    return -1 if v is None else int(v)


def load(c: Connection, gen: int) -> Statuses:
    out: dict[tuple[str, str], dict[str, Reported]] = {}
    for r in c.execute(sa.select(t.agent_statuses)):
        rep = Reported(r.host, r.kind, r.resource_id, r.status, r.port_id,
                       tuple(a for a in r.addresses.split(",") if a), int(r.revision), r.reason, r.reported_at)
        out.setdefault((r.kind, r.resource_id), {})[r.host] = rep
    return Statuses(gen, out)


def stored(r: Reported, host: str, ts: str) -> Reported:
    """R as `load` reads it back after `write_report(c, HOST, [R], ..., TS)` wrote it."""
    return Reported(host, r.kind, r.id, r.status, r.port_id, tuple(a for a in ",".join(r.addresses).split(",") if a),
                    int(r.revision), r.reason, ts)


def applied(before: Statuses, host: str, upserts: Iterable[Reported], removed: Iterable[tuple[str, str]],
            ts: str, gen: int) -> Statuses:
    """What `load` would read after `write_report(c, HOST, UPSERTS, REMOVED, TS)` turned generation
    BEFORE.generation into GEN (= that + 1: nobody else reported in between): BEFORE with those
    rows replaced, in O(report) (plus a copy of the outer mapping) instead of reading every row.
    BEFORE is not changed (readers may hold it)."""
    ups = list(upserts)
    by = dict(before.by_resource)
    for key in {(k, i) for k, i in removed} | {(r.kind, r.id) for r in ups}:
        rows = by.get(key)
        if rows is not None and host in rows:
            rest = {h: x for h, x in rows.items() if h != host}
            if rest:
                by[key] = rest
            else:
                del by[key]
    for r in ups:
        key = (r.kind, r.id)
        by[key] = {**by.get(key, {}), host: stored(r, host, ts)}
    return Statuses(gen, by)


def write_report(c: Connection, host: str, upserts: Iterable[Reported], removed: Iterable[tuple[str, str]],
                 ts: str) -> int:
    """Apply one report of HOST inside the write transaction C; returns the new generation."""
    a = t.agent_statuses
    ups = list(upserts)
    gone = {(k, i) for k, i in removed} | {(r.kind, r.id) for r in ups}
    for kind in KINDS:
        ids = sorted(i for k, i in gone if k == kind)
        for k in range(0, len(ids), 500):
            c.execute(a.delete().where(a.c.host == host, a.c.kind == kind, a.c.resource_id.in_(ids[k:k + 500])))
    if ups:
        c.execute(a.insert(), [{"host": host, "kind": r.kind, "resource_id": r.id, "status": r.status,
                                "port_id": r.port_id, "addresses": ",".join(r.addresses), "revision": r.revision,
                                "reason": r.reason, "reported_at": ts} for r in ups])
    gen = generation(c) + 1
    c.execute(t.revision.update().where(t.revision.c.id == GENERATION_ROW).values(value=gen))
    return gen

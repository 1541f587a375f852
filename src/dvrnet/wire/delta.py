"""The delta feed's answers (wire format version 1, docs/feed.md) <-> model values.

`take(model, body)` is what a follower does with one answer of
`GET /v2.0/dvrnet/hosts/<host>/changes`: a snapshot (`"resync": true`) replaces the model; a
delta becomes a `ChangeSet` applied to it (O(change)). It returns the new model, the touched keys
for `HostPlanner.plan(model, touched=...)` (None after a snapshot: plan it as a fresh cloud) and
the cursor to ask with next. Malformed answers raise ValueError naming the field; an answer of
another version raises ValueError too (the follower then asks for a snapshot).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..model import Cloud
from ..model.changeset import ChangeSet, Key, apply
from .codec import COLLECTIONS, cloud_from_json, decode_resource

VERSION = 1


@dataclass(frozen=True)
class Taken:
    model: Cloud
    touched: frozenset[Key] | None      # None: a snapshot replaced the model
    cursor: str
    revision: int
    reason: str | None = None           # why the server sent a snapshot


def changeset_from_json(body: dict[str, Any]) -> ChangeSet:
    ups, dels = body.get("upserts", {}), body.get("deletes", {})
    if not isinstance(ups, dict) or not isinstance(dels, dict):
        raise ValueError("delta: upserts and deletes must be objects")  # noqa: TRY004 - malformed input, callers catch ValueError
    upserts = []
    for kind, items in ups.items():
        cls = COLLECTIONS.get(kind)
        if cls is None or not isinstance(items, list):
            raise ValueError(f"delta.upserts.{kind}: not a list of a known kind")
        upserts += [decode_resource(cls, d, f"upserts.{kind}[{i}]") for i, d in enumerate(items)]
    deletes = []
    for kind, ids in dels.items():
        if kind not in COLLECTIONS or not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise ValueError(f"delta.deletes.{kind}: not a list of ids of a known kind")
        deletes += [(kind, i) for i in ids]
    rev = body.get("revision")
    if isinstance(rev, bool) or not isinstance(rev, int):
        raise ValueError(f"delta.revision: expected an integer, got {rev!r}")  # noqa: TRY004 - malformed input, callers catch ValueError
    return ChangeSet(tuple(upserts), tuple(deletes), rev)


def take(model: Cloud | None, body: dict[str, Any]) -> Taken:
    if not isinstance(body, dict) or body.get("version") != VERSION:
        raise ValueError(f"delta feed answer of version {body.get('version') if isinstance(body, dict) else '?'}, "
                         f"this client reads version {VERSION}")
    cursor = body.get("cursor")
    if not isinstance(cursor, str):
        raise ValueError("delta.cursor: expected a string")  # noqa: TRY004 - malformed input, callers catch ValueError
    if body.get("resync"):
        cloud = cloud_from_json(body["cloud"])
        return Taken(cloud, None, cursor, cloud.revision, str(body.get("reason", "")))
    if model is None:
        raise ValueError("a delta without a model to apply it to")
    cs = changeset_from_json(body)
    new, touched = apply(model, cs)
    return Taken(new, touched, cursor, new.revision)

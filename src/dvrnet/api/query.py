"""List queries: filters by any top-level field, `fields=` projection, sorting and pagination.

- `?a=x&a=y` matches objects whose `a` equals x OR y; values are compared as Neutron does from a
  query string: booleans accept True/true/1/False/false/0, `None`/empty match null, a list field
  matches when it contains the value; `fixed_ips=ip_address=X` / `fixed_ips=subnet_id=Y` match a
  port's fixed IPs; `tags=a,b` (all of them), `tags-any`, `not-tags`, `not-tags-any` filter by
  tags as Neutron does. A field the object does not have is 400 "[a] is invalid attribute for
  filtering".
- `fields=a&fields=b` keeps only those keys (unknown names are ignored, as Neutron does).
- `sort_key`/`sort_dir` (asc|desc), `limit` and `marker` (an id) page the list; a next link is
  added as `<collection>_links` only when more items follow.
"""
from __future__ import annotations

from typing import Any

from .errors import HTTPBadRequest

CONTROL = {"fields", "limit", "marker", "page_reverse", "sort_key", "sort_dir", "verbose"}
# Neutron's tag filters: comma-separated tags; all of them / any of them / not all / none of them
TAG_FILTERS = {"tags": lambda have, want: want <= have, "tags-any": lambda have, want: bool(want & have),
               "not-tags": lambda have, want: not want <= have,
               "not-tags-any": lambda have, want: not (want & have)}


def _matches(value: Any, q: str, key: str) -> bool:
    if isinstance(value, bool):
        return q.lower() in (("true", "1") if value else ("false", "0"))
    if value is None:
        return q in ("", "None", "none", "null")
    if isinstance(value, list):
        if key == "fixed_ips" and "=" in q:
            k, _, v = q.partition("=")
            return any(isinstance(f, dict) and str(f.get(k)) == v for f in value)
        return any(str(x) == q for x in value)
    if isinstance(value, dict):
        return False
    return str(value) == q


def apply(objs: list[dict], params: list[tuple[str, str]], collection: str, base_url: str) -> dict[str, Any]:
    filters: dict[str, list[str]] = {}
    fields: list[str] = []
    sort_keys: list[str] = []
    sort_dirs: list[str] = []
    limit = marker = None
    tag_filters: list[tuple[str, frozenset[str]]] = []
    for k, v in params:
        if k == "fields":
            fields.extend(x for x in v.split(",") if x)
        elif k == "sort_key":
            sort_keys.append(v)
        elif k == "sort_dir":
            sort_dirs.append(v)
        elif k == "limit":
            try:
                limit = int(v)
            except ValueError:
                raise HTTPBadRequest(f"Invalid input for limit. Reason: '{v}' is not an integer.") from None
            if limit < 0:
                raise HTTPBadRequest(f"Invalid input for limit. Reason: {v} is negative.")
        elif k == "marker":
            marker = v
        elif k in CONTROL:
            continue
        elif k in TAG_FILTERS:
            tag_filters.append((k, frozenset(x for x in v.split(",") if x)))
        else:
            filters.setdefault(k, []).append(v)
    known = set(objs[0]) if objs else None
    for k in filters:
        if known is not None and k not in known:
            raise HTTPBadRequest(f"[{k}] is invalid attribute for filtering")
    out = [o for o in objs if all(k in o and any(_matches(o[k], q, k) for q in qs) for k, qs in filters.items())]
    for k, want in tag_filters:
        out = [o for o in out if TAG_FILTERS[k](frozenset(o.get("tags") or ()), want)]
    for i, key in reversed(list(enumerate(sort_keys))):
        d = sort_dirs[i] if i < len(sort_dirs) else "asc"
        if d not in ("asc", "desc"):
            raise HTTPBadRequest(f"Invalid input for sort_dir. Reason: '{d}' is not asc or desc.")
        out.sort(key=lambda o: (o.get(key) is None, str(o.get(key))), reverse=(d == "desc"))
    links = []
    if marker is not None:
        ids = [o["id"] for o in out]
        out = out[ids.index(marker) + 1:] if marker in ids else []
    if limit:
        more = len(out) > limit
        out = out[:limit]
        if more and out:
            links.append({"rel": "next", "href": f"{base_url}?limit={limit}&marker={out[-1]['id']}"})
    if fields:
        out = [{k: o[k] for k in fields if k in o} for o in out]
    body: dict[str, Any] = {collection: out}
    if links:
        body[f"{collection}_links"] = links
    return body


def project(obj: dict, params: list[tuple[str, str]]) -> dict:
    fields = [x for k, v in params if k == "fields" for x in v.split(",") if x]
    return {k: obj[k] for k in fields if k in obj} if fields else obj

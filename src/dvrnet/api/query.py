"""List queries: filters by any top-level field, `fields=` projection, sorting and pagination,
as Neutron answers them (`neutron/api/api_common.py`), for every list endpoint.

- Filters: `?a=x&a=y` matches objects whose `a` equals x OR y; values are compared as Neutron
  does from a query string: booleans accept True/true/1/False/false/0, `None`/empty match null, a
  list field matches when it contains the value; `fixed_ips=ip_address=X` / `fixed_ips=subnet_id=Y`
  match a port's fixed IPs; `tags=a,b` (all of them), `tags-any`, `not-tags`, `not-tags-any`
  filter by tags as Neutron does. A name the resource does not show is 400 "[a] is invalid
  attribute for filtering" (also on an empty list).
- `fields=a&fields=b` keeps only those keys (unknown names are ignored, as Neutron does).
- Sorting: `sort_key=k&sort_dir=asc|desc`, pairwise (the counts must match: 400 otherwise); a
  key must be one of the resource's scalar fields (`Spec.sort_keys`: 400 "... is invalid
  attribute for sort_keys"); values compare by type (numbers as numbers), null first ascending;
  the primary key breaks ties, so pages are stable.
- Paging: `limit` (an integer >= 0; 0 or absent: no paging) and `marker` (the primary key of an
  item; an unknown one is 404 `<Kind>NotFound`, as Neutron's `_get_marker_obj`); the marker only
  counts with a limit. `page_reverse=true` pages backwards: the `limit` items before the marker
  (the last ones without a marker), in the same order. Links go in `<collection>_links`:
  `next` when items follow the page, `previous` when items precede it; each keeps every other
  query parameter (filters, fields, sort) and sets `marker` (and `page_reverse` for previous).
"""
from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from ..model.errors import NotFound
from .errors import HTTPBadRequest
from .schema import Spec

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


def _limit(v: str) -> int:
    try:
        n = int(v)
    except ValueError:
        n = -1
    if n < 0:
        raise HTTPBadRequest(f"Invalid input for limit. Reason: limit must be an integer 0 or greater, not '{v}'.")
    return n


def _sorts(spec: Spec, keys: list[str], dirs: list[str]) -> list[tuple[str, bool]]:
    if len(keys) != len(dirs):
        raise HTTPBadRequest("The number of sort_keys and sort_dirs must be same")
    bad = [k for k in keys if k not in spec.sort_keys]
    if bad:
        raise HTTPBadRequest(f"{bad} is invalid attribute for sort_keys; the {spec.collection} sort by "
                             f"{', '.join(spec.sort_keys)}")
    bad = [d for d in dirs if d not in ("asc", "desc")]
    if bad:
        raise HTTPBadRequest(f"{bad} is invalid value for sort_dirs, valid value is 'asc' and 'desc'")
    return [(k, d == "asc") for k, d in zip(keys, dirs, strict=True)]


def _sort(objs: list[dict], sorts: list[tuple[str, bool]], key: str) -> list[dict]:
    if key not in (k for k, _ in sorts):
        sorts = [*sorts, (key, True)]
    out = list(objs)
    for k, asc in reversed(sorts):     # stable sorts, last key first
        out.sort(key=lambda o, k=k: (o.get(k) is not None, o.get(k) if o.get(k) is not None else 0),
                 reverse=not asc)
    return out


def apply(objs: list[dict], params: list[tuple[str, str]], spec: Spec, path_url: str) -> dict[str, Any]:
    """The list answer for `objs` (rendered, in the default order) under the query `params`;
    `path_url` is the request URL without its query (links are built on it)."""
    filters: dict[str, list[str]] = {}
    fields: list[str] = []
    sort_keys: list[str] = []
    sort_dirs: list[str] = []
    limit, marker, reverse = 0, None, False
    tag_filters: list[tuple[str, frozenset[str]]] = []
    for k, v in params:
        if k == "fields":
            fields.extend(x for x in v.split(",") if x)
        elif k == "sort_key":
            sort_keys.extend([v] if v else [])
        elif k == "sort_dir":
            sort_dirs.extend([v] if v else [])
        elif k == "limit":
            limit = _limit(v)
        elif k == "marker":
            marker = v
        elif k == "page_reverse":
            reverse = v.lower() == "true"
        elif k in CONTROL:
            continue
        elif k in TAG_FILTERS and "tags" in spec.shown:
            tag_filters.append((k, frozenset(x for x in v.split(",") if x)))
        else:
            filters.setdefault(k, []).append(v)
    for k in filters:
        if k not in spec.shown:
            raise HTTPBadRequest(f"[{k}] is invalid attribute for filtering")
    sorts = _sorts(spec, sort_keys, sort_dirs)
    out = [o for o in objs if all(k in o and any(_matches(o[k], q, k) for q in qs) for k, qs in filters.items())]
    for k, want in tag_filters:
        out = [o for o in out if TAG_FILTERS[k](frozenset(o.get("tags") or ()), want)]
    if sorts or limit:
        out = _sort(out, sorts, spec.key)
    links = []
    if limit:
        if marker is not None and not any(o.get(spec.key) == marker for o in objs):
            raise NotFound(spec.kind, marker)
        ids = [o[spec.key] for o in out]
        if marker is None:
            lo, hi = (max(len(out) - limit, 0), len(out)) if reverse else (0, limit)
        else:
            # where the marker sits in the sorted, filtered list; if the filters drop it, where it
            # would sit (Neutron pages from the marker's sort values)
            at = ids.index(marker) if marker in ids else _place(objs, out, sorts, spec.key, marker)
            skip = 1 if marker in ids else 0
            lo, hi = (max(at - limit, 0), at) if reverse else (at + skip, at + skip + limit)
        page = out[lo:hi]
        base = [(k, v) for k, v in params if k not in ("marker", "page_reverse")]
        if page and hi < len(out):
            links.append({"rel": "next", "href": f"{path_url}?{urlencode([*base, ('marker', page[-1][spec.key])])}"})
        if page and lo > 0:
            prev = urlencode([*base, ("marker", page[0][spec.key]), ("page_reverse", "True")])
            links.append({"rel": "previous", "href": f"{path_url}?{prev}"})
        out = page
    if fields:
        out = [{k: o[k] for k in fields if k in o} for o in out]
    body: dict[str, Any] = {spec.collection: out}
    if links:
        body[f"{spec.collection}_links"] = links
    return body


def _place(objs: list[dict], filtered: list[dict], sorts: list[tuple[str, bool]], key: str, marker: str) -> int:
    """How many of `filtered` sort before the (filtered-out) item `marker`."""
    everything = _sort(objs, sorts, key)
    before = set()
    for o in everything:
        if o[key] == marker:
            break
        before.add(o[key])
    return sum(1 for o in filtered if o[key] in before)


def project(obj: dict, params: list[tuple[str, str]]) -> dict:
    fields = [x for k, v in params if k == "fields" for x in v.split(",") if x]
    return {k: obj[k] for k in fields if k in obj} if fields else obj

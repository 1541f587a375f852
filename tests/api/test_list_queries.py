"""List queries on every list endpoint (issue 10, items 5 and 9): pagination links keep the
request's other parameters and can be followed both ways, sort keys are validated and sorted by
type, an unknown marker is 404, as Neutron answers them."""
from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

import pytest
from api_helpers import TestClient, build_topology, neutron_error, ok

from dvrnet.api.app import create_app

# endpoint -> (collection key, primary key, NotFound type of an unknown marker, a filter, a sort key)
LISTS = {
    "/v2.0/networks": ("networks", "id", "NetworkNotFound", ("shared", "False"), "name"),
    "/v2.0/subnets": ("subnets", "id", "SubnetNotFound", ("ip_version", "4"), "cidr"),
    "/v2.0/routers": ("routers", "id", "RouterNotFound", ("distributed", "True"), "name"),
    "/v2.0/ports": ("ports", "id", "PortNotFound", ("admin_state_up", "True"), "device_owner"),
    "/v2.0/floatingips": ("floatingips", "id", "FloatingIPNotFound", ("status", "DOWN"), "floating_ip_address"),
    "/v2.0/agents": ("agents", "id", "AgentNotFound", ("agent_type", "L3 agent"), "host"),
    "/v2.0/dvrnet/hosts": ("hosts", "name", "HostNotFound", ("alive", "True"), "name"),
}


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    db = f"sqlite:///{tmp_path_factory.mktemp('q') / 'dvrnet.db'}"
    with TestClient(create_app(db), raise_server_exceptions=False) as c:
        ids = build_topology(c)
        for name, mode in (("compute2", "dvr"), ("compute3", "dvr"), ("network2", "dvr_snat")):
            ok(c.post("/v2.0/dvrnet/hosts", json={"host": {"name": name, "mode": mode}}))
        for i, mtu in enumerate((1500, 576, 9000, 1450)):
            ok(c.post("/v2.0/networks", json={"network": {"name": f"n{i}", "mtu": mtu}}))
        for i in range(3):
            ok(c.post("/v2.0/routers", json={"router": {"name": f"r{i}"}}))
            ok(c.post("/v2.0/floatingips", json={"floatingip": {"floating_network_id": ids["ext"]}}))
            ok(c.post("/v2.0/ports", json={"port": {"network_id": ids["net"], "name": f"p{i}"}}))
        yield c, ids


def _get(c, url: str) -> dict:
    """GET an absolute link the server gave (exactly one '?', a well-formed query)."""
    parts = urlsplit(url)
    assert url.count("?") == 1 and parts.scheme == "http", url
    return ok(c.get(parts.path + "?" + parts.query))


def _link(body: dict, coll: str, rel: str) -> str | None:
    return next((x["href"] for x in body.get(f"{coll}_links", []) if x["rel"] == rel), None)


@pytest.mark.parametrize("path", list(LISTS))
def test_pages_follow_both_ways_keeping_every_parameter(env, path):
    """Was: next links carried a second '?' whenever the request had other parameters."""
    c, _ = env
    coll, key, _, (fk, fv), sk = LISTS[path]
    params = [(fk, fv), ("fields", key), ("fields", sk), ("sort_key", sk), ("sort_dir", "desc")]
    full = ok(c.get(path, params=params))[coll]
    assert len(full) >= 3, full
    assert all(set(o) == {key, sk} for o in full)
    page = ok(c.get(path, params=[*params, ("limit", "2")]))
    seen, pages = list(page[coll]), [page]
    while (nxt := _link(page, coll, "next")) is not None:
        q = parse_qsl(urlsplit(nxt).query)
        for p in params:
            assert p in q, (p, q)
        assert ("limit", "2") in q and sum(1 for k, _ in q if k == "marker") == 1
        page = _get(c, nxt)
        seen += page[coll]
        pages.append(page)
    assert seen == full
    # and back again from the last page
    back = list(page[coll])
    while (prev := _link(page, coll, "previous")) is not None:
        assert ("page_reverse", "True") in parse_qsl(urlsplit(prev).query)
        page = _get(c, prev)
        back = page[coll] + back
    assert back == full
    assert _link(pages[0], coll, "previous") is None and _link(pages[-1], coll, "next") is None


@pytest.mark.parametrize("path", list(LISTS))
def test_page_reverse_without_marker_is_the_last_page(env, path):
    c, _ = env
    coll, key, *_ = LISTS[path]
    full = ok(c.get(path, params=[("sort_key", key), ("sort_dir", "asc")]))[coll]
    last = ok(c.get(path, params=[("sort_key", key), ("sort_dir", "asc"), ("limit", "2"), ("page_reverse", "True")]))
    assert last[coll] == full[-2:]


@pytest.mark.parametrize("path", list(LISTS))
def test_bad_sorts_and_markers(env, path):
    """Was: unknown sort keys ignored, unknown markers 200 []."""
    c, _ = env
    coll, _, notfound, _, sk = LISTS[path]
    neutron_error(c.get(path, params=[("sort_key", "no_such_field"), ("sort_dir", "asc")]), 400, "HTTPBadRequest")
    listy = {"networks": "subnets", "subnets": "allocation_pools", "routers": "external_gateway_info",
             "ports": "fixed_ips", "floatingips": "tags", "agents": "configurations"}.get(coll)
    if listy:   # lists and objects are no sort keys
        neutron_error(c.get(path, params=[("sort_key", listy), ("sort_dir", "asc")]), 400)
    neutron_error(c.get(path, params=[("sort_key", sk)]), 400)                      # no sort_dir for it
    neutron_error(c.get(path, params=[("sort_key", sk), ("sort_dir", "up")]), 400)
    neutron_error(c.get(path, params=[("limit", "-1")]), 400)
    neutron_error(c.get(path, params=[("limit", "x")]), 400)
    neutron_error(c.get(path, params=[("limit", "1"), ("marker", "no-such-item")]), 404, notfound)
    neutron_error(c.get(path, params=[("no_such_filter", "1")]), 400)
    assert ok(c.get(path, params=[("marker", "no-such-item")]))[coll]      # no limit: no paging (Neutron)


def test_sorting_compares_by_type(env):
    """Was: mtu 1500 sorted before 576 (compared as strings)."""
    c, _ = env
    mtus = [n["mtu"] for n in ok(c.get("/v2.0/networks", params=[("sort_key", "mtu"), ("sort_dir", "asc")]))["networks"]]
    assert mtus == sorted(mtus) and 576 in mtus and 9000 in mtus
    desc = ok(c.get("/v2.0/networks", params=[("sort_key", "mtu"), ("sort_dir", "desc"),
                                              ("sort_key", "name"), ("sort_dir", "asc")]))["networks"]
    assert [(n["mtu"], n["name"]) for n in desc] == sorted(((n["mtu"], n["name"]) for n in desc),
                                                           key=lambda t: (-t[0], t[1]))
    # null sorts first ascending, as in Neutron
    fips = ok(c.get("/v2.0/floatingips", params=[("sort_key", "port_id"), ("sort_dir", "asc")]))["floatingips"]
    assert fips and fips[0]["port_id"] is None


def test_filter_on_an_empty_list_is_still_validated(tmp_path):
    with TestClient(create_app(f"sqlite:///{tmp_path / 'e.db'}")) as c:
        for path in LISTS:
            neutron_error(c.get(path, params=[("no_such_filter", "1")]), 400)
            coll = LISTS[path][0]
            assert ok(c.get(path, params=[("limit", "1")]))[coll] == []

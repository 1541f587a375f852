"""Client-chosen ids and host names (issue 10, item 6) and subnet updates (item 9): Neutron
refuses `id` in every POST body, host names are validated, ids already stored stay usable; a
subnet's service_types can be updated (admin), `allocation_pools: []` means no pools."""
from __future__ import annotations

import pytest
from api_helpers import ADMIN_TOKEN, ALICE_TOKEN, TestClient, build_topology, neutron_error, ok

from dvrnet.api.app import create_app

KINDS = ["network", "subnet", "router", "port", "floatingip"]


@pytest.fixture
def env(db_url):
    with TestClient(create_app(db_url), raise_server_exceptions=False) as c:
        yield c, build_topology(c)


@pytest.fixture(scope="module")
def shared_env(tmp_path_factory):
    """One topology for the cases that change nothing but what they check."""
    db = f"sqlite:///{tmp_path_factory.mktemp('ids') / 'dvrnet.db'}"
    with TestClient(create_app(db), raise_server_exceptions=False) as c:
        yield c, build_topology(c)


def _body(kind: str, ids: dict) -> dict:
    return {"network": {"name": "x"}, "subnet": {"network_id": ids["net"], "cidr": "10.50.0.0/24"},
            "router": {"name": "x"}, "port": {"network_id": ids["net"]},
            "floatingip": {"floating_network_id": ids["ext"]}}[kind]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("chosen", ["x/y", "not-a-uuid", "00000000-0000-0000-0000-000000000001", "{id}"])
def test_id_is_refused_in_post(shared_env, kind, chosen):
    """Was: `"x/y"` made an undeletable network, any string was taken, one id could serve two kinds."""
    c, ids = shared_env
    before = ok(c.get("/v2.0/dvrnet/cloud"))
    chosen = chosen.replace("{id}", ids["router"] if kind != "router" else ids["net"])   # another kind's id
    one = {**_body(kind, ids), "id": chosen}
    err = neutron_error(c.post(f"/v2.0/{kind}s", json={kind: one}), 400, "HTTPBadRequest")
    assert err["message"] == "Attribute 'id' not allowed in POST"
    neutron_error(c.post(f"/v2.0/{kind}s", json={f"{kind}s": [_body(kind, ids), one]}), 400)
    assert ok(c.get("/v2.0/dvrnet/cloud")) == before
    made = ok(c.post(f"/v2.0/{kind}s", json={kind: _body(kind, ids)}), 201)[kind]
    assert made["id"] != chosen and len(made["id"]) == 36
    ok(c.delete(f"/v2.0/{kind}s/{made['id']}"), 204)


@pytest.mark.parametrize("name", ["", "x/y", "a b", "-lead", "trail-", "a..b", ".a", "a.", "ä", "a_b", "a" * 64,
                                  ".".join(["a" * 63] * 4) + "x", "a\n", "../etc", 5, None])
def test_bad_host_names_are_refused(shared_env, name):
    c, _ = shared_env
    before = ok(c.get("/v2.0/dvrnet/cloud"))
    err = neutron_error(c.post("/v2.0/dvrnet/hosts", json={"host": {"name": name, "mode": "dvr"}}), 400)
    assert "name" in err["message"]
    assert ok(c.get("/v2.0/dvrnet/cloud")) == before


@pytest.mark.parametrize("name", ["compute-7", "Node01", "h.example.org", "a" * 63, "1", "x" + ".y" * 120])
def test_good_host_names_register(shared_env, name):
    c, _ = shared_env
    h = ok(c.post("/v2.0/dvrnet/hosts", json={"host": {"name": name, "mode": "dvr"}}), 201)["host"]
    assert h["name"] == name
    assert ok(c.get(f"/v2.0/dvrnet/hosts/{name}"))["host"]["name"] == name


def test_ids_already_stored_stay_valid(env):
    """An id a client chose before this check (stored by an older server) still works, unchanged."""
    c, _ = env
    svc = c.app.state.service
    svc.write(lambda txn: txn.ws.create_network(name="old", id="legacy-net"))
    svc.write(lambda txn: txn.ws.create_subnet("legacy-net", "10.60.0.0/24", id="legacy-sub"))
    assert ok(c.get("/v2.0/networks/legacy-net"))["network"]["subnets"] == ["legacy-sub"]
    assert ok(c.put("/v2.0/networks/legacy-net", json={"network": {"name": "still"}}))["network"]["name"] == "still"
    p = ok(c.post("/v2.0/ports", json={"port": {"network_id": "legacy-net"}}), 201)["port"]
    assert p["fixed_ips"][0]["subnet_id"] == "legacy-sub"
    ok(c.delete(f"/v2.0/ports/{p['id']}"), 204)
    ok(c.delete("/v2.0/subnets/legacy-sub"), 204)
    ok(c.delete("/v2.0/networks/legacy-net"), 204)



# ---- item 9: subnets ----------------------------------------------------------------------------
def test_service_types_can_be_updated(env):
    c, ids = env
    s = ok(c.put(f"/v2.0/subnets/{ids['s_fip']}", json={"subnet": {"service_types": []}}))["subnet"]
    assert s["service_types"] == []
    port = ok(c.post("/v2.0/ports", json={"port": {"network_id": ids["ext"], "device_owner": "compute:nova",
                                                    "fixed_ips": [{"subnet_id": ids["s_fip"]}]}}), 201)["port"]
    s = ok(c.put(f"/v2.0/subnets/{ids['s_fip']}", json={"subnet": {"service_types": ["network:floatingip"]}}))["subnet"]
    assert s["service_types"] == ["network:floatingip"]
    # the port keeps its address (as in Neutron); new explicit requests follow the new types
    assert ok(c.get(f"/v2.0/ports/{port['id']}"))["port"]["fixed_ips"] == port["fixed_ips"]
    ok(c.put(f"/v2.0/ports/{port['id']}", json={"port": {"fixed_ips": port["fixed_ips"]}}))
    neutron_error(c.post("/v2.0/ports", json={"port": {"network_id": ids["ext"], "device_owner": "compute:nova",
                                                        "fixed_ips": [{"subnet_id": ids["s_fip"]}]}}), 400)
    neutron_error(c.put(f"/v2.0/subnets/{ids['s_fip']}", json={"subnet": {"service_types": ["bogus"]}}), 400)
    assert ok(c.get(f"/v2.0/subnets/{ids['s_fip']}"))["subnet"]["service_types"] == ["network:floatingip"]


def test_service_types_update_is_admin_only(db_url, tokens_file):
    with TestClient(create_app(db_url, auth="token", tokens=tokens_file)) as c:
        alice = {"X-Auth-Token": ALICE_TOKEN}
        net = ok(c.post("/v2.0/networks", json={"network": {"name": "a"}}, headers=alice))["network"]
        sub = ok(c.post("/v2.0/subnets", json={"subnet": {"network_id": net["id"], "cidr": "10.8.0.0/24"}},
                        headers=alice))["subnet"]
        for types in (["compute:nova"], []):     # also the default value: an update is explicit
            err = neutron_error(c.put(f"/v2.0/subnets/{sub['id']}", json={"subnet": {"service_types": types}},
                                      headers=alice), 403, "PolicyNotAuthorized")
            assert "update_subnet:service_types" in err["message"]
        ok(c.put(f"/v2.0/subnets/{sub['id']}", json={"subnet": {"service_types": ["compute:nova"]}},
                 headers={"X-Auth-Token": ADMIN_TOKEN}))


def test_empty_allocation_pools_mean_no_pools(env):
    """Was: `allocation_pools: []` silently gave the default pools."""
    c, ids = env
    net = ok(c.post("/v2.0/networks", json={"network": {"name": "static"}}))["network"]
    s = ok(c.post("/v2.0/subnets", json={"subnet": {"network_id": net["id"], "cidr": "10.70.0.0/24",
                                                     "allocation_pools": []}}))["subnet"]
    assert s["allocation_pools"] == [] and s["gateway_ip"] == "10.70.0.1"
    assert ok(c.get(f"/v2.0/subnets/{s['id']}"))["subnet"]["allocation_pools"] == []
    neutron_error(c.post("/v2.0/ports", json={"port": {"network_id": net["id"]}}), 409, "IpAddressGenerationFailure")
    p = ok(c.post("/v2.0/ports", json={"port": {"network_id": net["id"], "fixed_ips": [
        {"ip_address": "10.70.0.9"}]}}), 201)["port"]
    assert p["fixed_ips"] == [{"subnet_id": s["id"], "ip_address": "10.70.0.9"}]
    # update to [] on a subnet that had pools; and back
    s2 = ok(c.put(f"/v2.0/subnets/{ids['s_priv']}", json={"subnet": {"allocation_pools": []}}))["subnet"]
    assert s2["allocation_pools"] == []
    neutron_error(c.post("/v2.0/ports", json={"port": {"network_id": ids["net"]}}), 409)
    ok(c.put(f"/v2.0/subnets/{ids['s_priv']}", json={"subnet": {"allocation_pools": [
        {"start": "10.0.0.100", "end": "10.0.0.110"}]}}))
    q = ok(c.post("/v2.0/ports", json={"port": {"network_id": ids["net"]}}), 201)["port"]
    assert q["fixed_ips"][0]["ip_address"] == "10.0.0.100"
    # what the agent receives keeps the empty pools (the codec carries them)
    view = ok(c.get("/v2.0/dvrnet/cloud"))["cloud"]
    assert next(x for x in view["subnets"] if x["id"] == s["id"])["allocation_pools"] == []

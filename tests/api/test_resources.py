"""Neutron-shaped resources over raw HTTP: discovery, full objects, filters, fields, updates,
router actions, agents, persistence across restarts, migrations, OpenAPI."""
from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from api_helpers import TestClient, build_topology, neutron_error, ok

from dvrnet.api.app import create_app
from dvrnet.store.tables import metadata


def test_discovery_and_extensions(client):
    v = ok(client.get("/"))
    assert v == {"versions": [{"id": "v2.0", "status": "CURRENT",
                               "links": [{"href": "http://testserver/v2.0/", "rel": "self"}]}]}
    res = ok(client.get("/v2.0/"))["resources"]
    assert {r["collection"] for r in res} == {"networks", "subnets", "routers", "ports", "floatingips"}
    aliases = {e["alias"] for e in ok(client.get("/v2.0/extensions"))["extensions"]}
    assert {"external-net", "router", "subnet-service-types", "dvr"} <= aliases
    assert "external-gateway-multihoming" not in aliases
    assert ok(client.get("/v2.0/extensions/dvr"))["extension"]["alias"] == "dvr"
    paths = ok(client.get("/openapi.json"))["paths"]
    assert "/v2.0/routers/{id_}/add_router_interface" in paths and "/v2.0/dvrnet/hosts/{name}/view" in paths


def test_full_objects_filters_and_fields(client):
    ids = build_topology(client)
    sub = ok(client.get(f"/v2.0/subnets/{ids['s_fg']}"))["subnet"]
    for k in ("allocation_pools", "dns_nameservers", "host_routes", "service_types"):
        assert isinstance(sub[k], list)
    assert sub["gateway_ip"] is None and sub["ip_version"] == 4
    for k in ("id", "project_id", "tenant_id", "created_at", "updated_at", "revision_number", "description"):
        assert k in sub
    net = ok(client.get(f"/v2.0/networks/{ids['ext']}"))["network"]
    assert net["router:external"] is True and len(net["subnets"]) == 3

    ext_only = ok(client.get("/v2.0/networks?router%3Aexternal=True"))["networks"]
    assert [n["id"] for n in ext_only] == [ids["ext"]]
    assert [n["name"] for n in ok(client.get("/v2.0/networks?name=priv"))["networks"]] == ["priv"]
    both = ok(client.get("/v2.0/networks", params=[("name", "priv"), ("name", "ext")]))["networks"]
    assert {n["name"] for n in both} == {"priv", "ext"}
    assert len(ok(client.get(f"/v2.0/subnets?network_id={ids['ext']}"))["subnets"]) == 3
    rports = ok(client.get(f"/v2.0/ports?device_id={ids['router']}"))["ports"]
    assert {p["device_owner"] for p in rports} == {"network:router_gateway", "network:router_interface_distributed",
                                                   "network:router_centralized_snat"}
    slim = ok(client.get("/v2.0/ports", params=[("fields", "id"), ("fields", "name")]))["ports"]
    assert all(set(p) <= {"id", "name"} for p in slim) and len(slim) >= 4
    assert ok(client.get(f"/v2.0/networks/{ids['ext']}?fields=name"))["network"] == {"name": "ext"}
    vm = ok(client.get(f"/v2.0/ports/{ids['port']}"))["port"]
    ip = vm["fixed_ips"][0]["ip_address"]
    assert [p["id"] for p in ok(client.get(f"/v2.0/ports?fixed_ips=ip_address%3D{ip}"))["ports"]] == [ids["port"]]
    page = ok(client.get("/v2.0/subnets?limit=2"))
    assert len(page["subnets"]) == 2 and page["subnets_links"][0]["rel"] == "next"

    fg = ok(client.get("/v2.0/ports?device_owner=network:floatingip_agent_gateway"))["ports"]
    assert [(p["binding:host_id"], p["fixed_ips"][0]["subnet_id"]) for p in fg] == [("compute1", ids["s_fg"])]


def test_updates_bump_revision_number_and_router_interface_removal(client):
    ids = build_topology(client)
    net = ok(client.put(f"/v2.0/networks/{ids['net']}", json={"network": {"name": "renamed", "description": "d"}}))["network"]
    assert net["name"] == "renamed" and net["description"] == "d" and net["revision_number"] == 2
    fip = ok(client.post("/v2.0/floatingips", json={"floatingip": {"floating_network_id": ids["ext"],
                                                                    "subnet_id": ids["s_fip"]}}))["floatingip"]
    assert fip["floating_ip_address"].startswith("198.51.100.") and fip["status"] == "DOWN"
    fip = ok(client.put(f"/v2.0/floatingips/{fip['id']}", json={"floatingip": {"port_id": ids["port"]}}))["floatingip"]
    assert fip["router_id"] == ids["router"] and fip["fixed_ip_address"].startswith("10.0.0.")
    fip = ok(client.put(f"/v2.0/floatingips/{fip['id']}", json={"floatingip": {"port_id": None}}))["floatingip"]
    assert fip["port_id"] is None and fip["router_id"] is None
    ok(client.delete(f"/v2.0/ports/{ids['port']}"), 204)
    res = ok(client.put(f"/v2.0/routers/{ids['router']}/remove_router_interface", json={"subnet_id": ids["s_priv"]}))
    assert res["subnet_id"] == ids["s_priv"] and res["id"] == ids["router"]
    ok(client.put(f"/v2.0/routers/{ids['router']}", json={"router": {"external_gateway_info": {}}}))
    assert ok(client.get(f"/v2.0/routers/{ids['router']}"))["router"]["external_gateway_info"] is None
    assert ok(client.get("/v2.0/ports?device_owner=network:floatingip_agent_gateway"))["ports"] == []


def test_bulk_create_is_one_transaction(client):
    nets = ok(client.post("/v2.0/networks", json={"networks": [{"name": "a"}, {"name": "b"}]}))["networks"]
    assert [n["name"] for n in nets] == ["a", "b"]
    r = client.post("/v2.0/subnets", json={"subnets": [
        {"network_id": nets[0]["id"], "cidr": "10.1.0.0/24"}, {"network_id": "missing", "cidr": "10.2.0.0/24"}]})
    neutron_error(r, 404)
    assert ok(client.get("/v2.0/subnets"))["subnets"] == []


def test_agents_list_hosts(client):
    build_topology(client)
    agents = ok(client.get("/v2.0/agents"))["agents"]
    assert {(a["host"], a["agent_type"], a["configurations"]["agent_mode"], a["alive"]) for a in agents} == {
        ("compute1", "L3 agent", "dvr", True), ("network1", "L3 agent", "dvr_snat", True)}
    a = agents[0]
    assert ok(client.get(f"/v2.0/agents/{a['id']}"))["agent"]["host"] == a["host"]
    assert [x["host"] for x in ok(client.get("/v2.0/agents?host=network1"))["agents"]] == ["network1"]
    again = client.post("/v2.0/dvrnet/hosts", json={"host": {"name": "compute1", "mode": "dvr"}})
    assert again.status_code == 200
    neutron_error(client.post("/v2.0/dvrnet/hosts", json={"host": {"name": "x", "mode": "legacy"}}), 400)


def test_state_survives_a_restart_and_schema_matches_migrations(db_url):
    with TestClient(create_app(db_url)) as c:
        ids = build_topology(c)
        before = ok(c.get("/v2.0/dvrnet/cloud"))
        ports = ok(c.get("/v2.0/ports"))["ports"]
    with TestClient(create_app(db_url)) as c:
        assert ok(c.get("/v2.0/dvrnet/cloud")) == before
        assert ok(c.get("/v2.0/ports"))["ports"] == ports
        ok(c.delete(f"/v2.0/ports/{ids['port']}"), 204)
        store = c.app.state.store
        with store.engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), metadata)
        assert diff == [], diff


def test_serve_helpers(tmp_path):
    import pytest

    from dvrnet.api.serve import default_db, parse_bind
    assert parse_bind("127.0.0.1:9696") == ("127.0.0.1", 9696)
    assert parse_bind("[::1]:80") == ("::1", 80)
    for bad in ("9696", "host:", "h:99999"):
        with pytest.raises(ValueError, match="HOST:PORT"):
            parse_bind(bad)
    assert default_db(str(tmp_path)) == f"sqlite:///{tmp_path}/dvrnet.db"

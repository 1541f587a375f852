"""Token mode: 401 without a valid token; projects see and change only their own resources."""
from __future__ import annotations

from api_helpers import ADMIN_TOKEN, ALICE_TOKEN, BOB_TOKEN, TestClient, build_topology, neutron_error, ok

A = {"X-Auth-Token": ADMIN_TOKEN}
ALICE = {"X-Auth-Token": ALICE_TOKEN}
BOB = {"X-Auth-Token": BOB_TOKEN}


def test_no_or_bad_token_is_401_but_discovery_is_open(token_app):
    with TestClient(token_app) as c:
        neutron_error(c.get("/v2.0/networks"), 401)
        neutron_error(c.get("/v2.0/networks", headers={"X-Auth-Token": "wrong"}), 401)
        assert c.get("/").status_code == 200
        assert c.get("/v2.0/networks", headers=ALICE).status_code == 200


def test_projects_are_isolated(token_app):
    with TestClient(token_app) as c:
        ids = build_topology(c, headers=A)
        # admin-only attributes and endpoints
        neutron_error(c.post("/v2.0/networks", json={"network": {"router:external": True}}, headers=ALICE), 403,
                      "PolicyNotAuthorized")
        neutron_error(c.post("/v2.0/subnets", json={"subnet": {"network_id": ids["ext"], "cidr": "192.0.2.0/24"}},
                             headers=ALICE), 403)
        neutron_error(c.get("/v2.0/agents", headers=ALICE), 403)
        neutron_error(c.get("/v2.0/dvrnet/hosts/compute1/view", headers=ALICE), 403)
        neutron_error(c.post("/v2.0/networks", json={"network": {"project_id": "bob"}}, headers=ALICE), 400)

        net = ok(c.post("/v2.0/networks", json={"network": {"name": "alice-net"}}, headers=ALICE))["network"]
        assert net["project_id"] == "alice"
        neutron_error(c.post("/v2.0/subnets", json={"subnet": {
            "network_id": net["id"], "cidr": "10.7.0.0/24", "service_types": ["compute:nova"]}}, headers=ALICE), 403)
        sub = ok(c.post("/v2.0/subnets", json={"subnet": {"network_id": net["id"], "cidr": "10.7.0.0/24"}},
                        headers=ALICE))["subnet"]
        router = ok(c.post("/v2.0/routers", json={"router": {"name": "ar", "external_gateway_info": {
            "network_id": ids["ext"]}}}, headers=ALICE))["router"]
        neutron_error(c.post("/v2.0/routers", json={"router": {"external_gateway_info": {
            "network_id": ids["ext"], "external_fixed_ips": [{"subnet_id": ids["s_gw"]}]}}}, headers=ALICE), 403)
        ok(c.put(f"/v2.0/routers/{router['id']}/add_router_interface", json={"subnet_id": sub["id"]}, headers=ALICE))
        port = ok(c.post("/v2.0/ports", json={"port": {"network_id": net["id"]}}, headers=ALICE))["port"]
        fip = ok(c.post("/v2.0/floatingips", json={"floatingip": {
            "floating_network_id": ids["ext"], "port_id": port["id"]}}, headers=ALICE))["floatingip"]
        assert fip["project_id"] == "alice"

        # alice sees her own, the external network and its subnets; not the admin's tenant network
        names = {n["name"] for n in ok(c.get("/v2.0/networks", headers=ALICE))["networks"]}
        assert names == {"alice-net", "ext"}
        assert ok(c.get(f"/v2.0/subnets/{ids['s_fip']}", headers=ALICE))["subnet"]["id"] == ids["s_fip"]
        neutron_error(c.get(f"/v2.0/networks/{ids['net']}", headers=ALICE), 404)
        neutron_error(c.put(f"/v2.0/networks/{ids['ext']}", json={"network": {"name": "x"}}, headers=ALICE), 403)
        neutron_error(c.delete(f"/v2.0/ports/{ids['port']}", headers=ALICE), 404)

        # bob sees none of alice's resources and cannot touch them
        for coll, id_ in (("networks", net["id"]), ("subnets", sub["id"]), ("routers", router["id"]),
                          ("ports", port["id"]), ("floatingips", fip["id"])):
            neutron_error(c.get(f"/v2.0/{coll}/{id_}", headers=BOB), 404)
            neutron_error(c.delete(f"/v2.0/{coll}/{id_}", headers=BOB), 404)
        assert ok(c.get("/v2.0/floatingips", headers=BOB))["floatingips"] == []
        assert [n["name"] for n in ok(c.get("/v2.0/networks", headers=BOB))["networks"]] == ["ext"]
        neutron_error(c.post("/v2.0/floatingips", json={"floatingip": {
            "floating_network_id": ids["ext"], "port_id": port["id"]}}, headers=BOB), 404)
        neutron_error(c.put(f"/v2.0/routers/{router['id']}/add_router_interface",
                            json={"subnet_id": sub["id"]}, headers=BOB), 404)

        # admin sees everything
        assert len(ok(c.get("/v2.0/floatingips", headers=A))["floatingips"]) == 1
        ok(c.delete(f"/v2.0/floatingips/{fip['id']}", headers=ALICE), 204)

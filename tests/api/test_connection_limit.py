"""The port attribute `connection_limit` (extension `dvrnet-connection-limit`): the per-VM
connection limit override the agents plan into qrouter-/snat- namespaces (plan/connlimit.py).
null: the agent's default; 0: no per-VM limit; admin only; kept across a restart; in host views."""
from __future__ import annotations

from api_helpers import ADMIN_TOKEN, ALICE_TOKEN, TestClient, build_topology, neutron_error, ok

from dvrnet.api.app import create_app

ADMIN, ALICE = {"X-Auth-Token": ADMIN_TOKEN}, {"X-Auth-Token": ALICE_TOKEN}


def test_set_show_update_and_reach_the_host_view(client):
    ids = build_topology(client)
    assert ok(client.get(f"/v2.0/ports/{ids['port']}"))["port"]["connection_limit"] is None
    p = ok(client.post("/v2.0/ports", json={"port": {"network_id": ids["net"], "device_owner": "compute:nova",
                                                      "binding:host_id": "compute1", "connection_limit": 500}}))["port"]
    assert p["connection_limit"] == 500
    assert ok(client.put(f"/v2.0/ports/{p['id']}", json={"port": {"connection_limit": 0}}))["port"]["connection_limit"] == 0
    view = ok(client.get("/v2.0/dvrnet/hosts/compute1/view"))
    assert '"connection_limit": 0' in str(view).replace("'", '"')
    assert ok(client.put(f"/v2.0/ports/{p['id']}", json={"port": {"connection_limit": None}}))["port"][
        "connection_limit"] is None
    assert "dvrnet-connection-limit" in {e["alias"] for e in ok(client.get("/v2.0/extensions"))["extensions"]}


def test_bad_values_name_the_field(client):
    ids = build_topology(client)
    for bad in (-1, "many", True, 2**31):
        err = neutron_error(client.put(f"/v2.0/ports/{ids['port']}", json={"port": {"connection_limit": bad}}), 400)
        assert "connection_limit" in err["message"], err
    assert ok(client.get(f"/v2.0/ports/{ids['port']}"))["port"]["connection_limit"] is None   # nothing applied


def test_admin_only_and_kept_across_a_restart(db_url, tokens_file):
    with TestClient(create_app(db_url, auth="token", tokens=tokens_file)) as c:
        ids = build_topology(c, headers=ADMIN)
        net = ok(c.post("/v2.0/networks", json={"network": {"name": "alice-net"}}, headers=ALICE))["network"]
        ok(c.post("/v2.0/subnets", json={"subnet": {"network_id": net["id"], "cidr": "10.9.0.0/24"}}, headers=ALICE))
        neutron_error(c.post("/v2.0/ports", json={"port": {"network_id": net["id"], "connection_limit": 10}},
                             headers=ALICE), 403, "PolicyNotAuthorized")
        mine = ok(c.post("/v2.0/ports", json={"port": {"network_id": net["id"], "connection_limit": None}},
                         headers=ALICE))["port"]
        neutron_error(c.put(f"/v2.0/ports/{mine['id']}", json={"port": {"connection_limit": 10}}, headers=ALICE), 403)
        ok(c.put(f"/v2.0/ports/{ids['port']}", json={"port": {"connection_limit": 1234}}, headers=ADMIN))
    with TestClient(create_app(db_url, auth="token", tokens=tokens_file)) as c:
        assert ok(c.get(f"/v2.0/ports/{ids['port']}", headers=ADMIN))["port"]["connection_limit"] == 1234

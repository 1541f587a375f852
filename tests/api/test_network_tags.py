"""Neutron's tags on networks: the real `openstack` client sets, shows, filters and unsets them
(`openstack network set --tag dvrnet:routed EXT` is how an operator puts a network in routed mode),
and the raw endpoints answer as Neutron's do (status codes, TagNotFound, 60-character limit)."""
from __future__ import annotations

import httpx
from api_helpers import ok, running_server
from test_openstack_cli import Osc, pytestmark  # noqa: F401  (the same skip when there is no client)

from dvrnet.api.app import create_app
from dvrnet.model.resources import ROUTED_TAG


def test_openstack_client_tags(db_url, tmp_path):
    with running_server(create_app(db_url)) as url:
        o = Osc(url, tmp_path, ["--os-auth-type", "none"])
        ext = o.value("network", "create", "--external", "ext-net")
        other = o.value("network", "create", "tenant")
        o.run("network", "set", "--tag", ROUTED_TAG, "ext-net")
        o.run("network", "set", "--tag", "blue", "ext-net")
        shown = o.json("network", "show", "ext-net")
        assert sorted(shown["tags"]) == ["blue", ROUTED_TAG]
        listed = o.json("network", "list", "--tags", ROUTED_TAG)
        assert [n["ID"] for n in listed] == [ext]
        listed = o.json("network", "list", "--not-tags", ROUTED_TAG)
        assert [n["ID"] for n in listed] == [other]
        o.run("network", "unset", "--tag", "blue", "ext-net")
        assert o.json("network", "show", "ext-net")["tags"] == [ROUTED_TAG]
        body = ok(httpx.get(f"{url}/v2.0/networks/{ext}"))["network"]
        assert body["tags"] == [ROUTED_TAG] and body["revision_number"] >= 2


def test_tag_endpoints(db_url):
    with running_server(create_app(db_url)) as url:
        c = httpx.Client(base_url=url)
        net = ok(c.post("/v2.0/networks", json={"network": {"name": "n", "router:external": True}}))["network"]
        base = f"/v2.0/networks/{net['id']}/tags"
        assert c.put(base + "/red").status_code == 201
        assert c.put(base + "/red").status_code == 201           # already there: fine
        assert c.get(base + "/red").status_code == 204
        r = c.get(base + "/green")
        assert r.status_code == 404 and r.json()["NeutronError"]["type"] == "TagNotFound"
        assert c.put(base, json={"tags": ["b", "a", "a"]}).json() == {"tags": ["a", "b"]}
        assert c.post(base, json={"tags": ["c"]}).json() == {"tags": ["a", "b", "c"]}
        assert c.get(base).json() == {"tags": ["a", "b", "c"]}
        assert c.delete(base + "/a").status_code == 204
        assert c.delete(base + "/a").status_code == 404
        r = c.put(base + "/" + "x" * 61)
        assert r.status_code == 400 and "tags" in r.json()["NeutronError"]["message"]
        r = c.put(base, json={"tags": "a"})
        assert r.status_code == 400
        assert c.get(base).json() == {"tags": ["b", "c"]}          # nothing half-applied
        assert c.get("/v2.0/networks", params={"tags": "b,c"}).json()["networks"][0]["id"] == net["id"]
        assert c.get("/v2.0/networks", params={"tags": "b,z"}).json()["networks"] == []
        assert len(c.get("/v2.0/networks", params={"tags-any": "b,z"}).json()["networks"]) == 1
        assert c.get("/v2.0/networks", params={"not-tags-any": "z,c"}).json()["networks"] == []
        assert c.delete(base).status_code == 204
        assert c.get(base).json() == {"tags": []}
        assert c.get("/v2.0/networks/nope/tags").status_code == 404


def test_tags_in_the_model_and_the_agents_codec():
    import pytest

    from dvrnet.model import Cloud, Network
    from dvrnet.model.errors import InvalidInput
    from dvrnet.wire.codec import cloud_from_json, cloud_to_json
    n = Network("n1", external=True, tags=("z", ROUTED_TAG, "z"))
    assert n.tags == (ROUTED_TAG, "z") and n.routed and not Network("n2").routed
    c = Cloud.of(networks=[n])
    assert cloud_from_json(cloud_to_json(c)).networks["n1"] == n
    with pytest.raises(InvalidInput, match="tags"):
        Network("n3", tags=("",))

"""`Assembly` (the host's model changed router by router through ChangeSets) holds exactly what
`translate.cloud_of` makes of the same graphs, after every step of random sequences of fetches
and drops of routers sharing an external network, its subnets, a tenant subnet and fg- port —
the captured payload varied: a subnet removed from the external network, FIPs gone, neighbours
changed. And a change's touched keys name what changed, not the whole cloud."""
from __future__ import annotations

import copy
import json
import random
from pathlib import Path

import pytest

from dvrnet.neutron.assemble import Assembly
from dvrnet.neutron.translate import cloud_of, translate_router

PAYLOADS = Path(__file__).parent / "payloads"
GREEN = "289b48ee-bfcd-4cd3-aec1-300e2c864ef3"
TENANT_SUBNET = "089ca4bc-f292-4a33-bd36-98d3b8f88664"
TENANT_NET = "58111f6b-82e1-43a5-bdf7-7fc1472a3edf"


def base() -> dict:
    return json.loads((PAYLOADS / "payload-compute1.json").read_text())[0]


def variant(k: int, rng: random.Random, green: str = "yes") -> dict:
    """Router K (its own ids) with a random variation of the captured payload. GREEN: "yes" (the
    subnet with its FIPs), "nofips" (its FIPs deleted), "no" (the subnet removed from the
    external network, which Neutron allows once no FIP is on it)."""
    r = copy.deepcopy(base())
    if k:
        r["id"] = f"{k}{k}{k}{k}{k}{k}{k}{k}" + r["id"][8:]
        r["gw_port"]["id"] = r["gw_port"]["id"][:-4] + f"{k:04d}"
        r["gw_port"]["fixed_ips"][0]["ip_address"] = f"203.0.113.{70 + k}"
        for p in r["_interfaces"] + r["_snat_router_interfaces"]:
            p["id"] = p["id"][:-4] + f"{k:04d}"
        r["_floatingips"] = [dict(f, id=f["id"][:-4] + f"{k:04d}", router_id=r["id"], port_id=f["port_id"][:-4] + f"{k:04d}",
                                  floating_ip_address=f"203.0.113.{100 + 10 * k + i}")
                             for i, f in enumerate(r["_floatingips"])]
        for part in ("_interfaces", "_snat_router_interfaces", "_floatingips"):     # a tenant network of its own
            text = json.dumps(r[part]).replace(TENANT_SUBNET, tenant_subnet(k)).replace(TENANT_NET, tenant_net(k))
            r[part] = json.loads(text.replace('"10.0.1.', f'"10.0.{k + 1}.').replace("10.0.1.0/24", f"10.0.{k + 1}.0/24"))
    if green != "yes":
        r["_floatingips"] = [f for f in r["_floatingips"] if not f["floating_ip_address"].startswith("198.51.100.")]
    if green == "no":
        for d in (r["gw_port"], *r["_floatingip_agent_interfaces"]):
            d["extra_subnets"] = [s for s in d["extra_subnets"] if s["id"] != GREEN]
    if rng.random() < 0.3:
        r["_floatingips"] = r["_floatingips"][:rng.randrange(len(r["_floatingips"]) + 1)]
    return r


def tenant_subnet(k: int) -> str:
    return TENANT_SUBNET if not k else TENANT_SUBNET[:-4] + f"{k:04d}"


def tenant_net(k: int) -> str:
    return TENANT_NET if not k else TENANT_NET[:-4] + f"{k:04d}"


def neighbours(rng: random.Random) -> dict[str, list[dict]]:
    """get_ports_by_subnet of every router's tenant subnet: a random few VM ports."""
    return {tenant_subnet(k): [{"id": f"vm-{k}-{i}", "network_id": tenant_net(k), "device_owner": "compute:nova",
                                "mac_address": f"fa:16:3e:00:{k:02x}:{i:02x}",
                                "fixed_ips": [{"subnet_id": tenant_subnet(k), "ip_address": f"10.0.{k + 1}.{10 + i}"}]}
                               for i in range(4) if rng.random() < 0.6]
            for k in range(4)}


@pytest.mark.parametrize("seed", range(12))
def test_assembly_equals_cloud_of_after_every_change(seed):
    rng = random.Random(seed)
    graphs, order, variants = {}, {}, {}
    a = Assembly("compute1", "dvr")
    seq = 0
    green = "yes"
    ports = neighbours(rng)

    def fetch(k: int) -> str:
        nonlocal seq
        r = variant(k, rng, green)
        seq += 1
        graphs[r["id"]], order[r["id"]], variants[r["id"]] = translate_router(r, "compute1", ports), seq, k
        return r["id"]

    for step in range(60):
        x = rng.random()
        if x < 0.1 and green == "yes":      # GREEN's FIPs deleted: each router that had one is notified
            green = "nofips"
            changed = {fetch(variants[r]) for r in list(graphs)}
        elif x < 0.2 and green != "yes":    # the subnet removed (no router notified), or back again
            green = "no" if green == "nofips" else "yes"
            changed = set()
        else:
            k = rng.randrange(4)
            rid = variant(k, rng)["id"]
            if rng.random() < 0.25 and rid in graphs:
                del graphs[rid]
                order.pop(rid)
                changed = {rid}
            else:
                if rng.random() < 0.3:
                    ports = neighbours(rng)     # neighbours changed (add_arp_entry / a full sync)
                changed = {fetch(k)}
        touched = a.update(graphs, order, changed, revision=step + 1)
        want = cloud_of("compute1", "dvr", [graphs[r] for r in sorted(graphs, key=order.get)], revision=step + 1)
        assert a.cloud == want, f"seed {seed} step {step}"
        assert (touched is None) == (step == 0), f"seed {seed} step {step}: made whole, not changed"
    assert a.snapshots == 1 and a.applied == 59


def test_touched_keys_are_the_change():
    rng = random.Random(1)
    a = Assembly("compute1", "dvr")
    graphs = {}
    for k in range(3):
        g = translate_router(variant(k, random.Random(100)), "compute1", neighbours(random.Random(7)))
        graphs[g.router.id] = g
    order = {r: i for i, r in enumerate(graphs)}
    a.update(graphs, order, set(graphs), 1)
    assert a.update(graphs, order, set(graphs), 2) == frozenset()         # the same graphs: nothing
    r = variant(2, rng)
    r["_floatingips"] = r["_floatingips"][:1]
    g = translate_router(r, "compute1", neighbours(random.Random(7)))
    gone = {f.id for f in graphs[g.router.id].fips} - {f.id for f in g.fips}
    assert gone
    graphs[g.router.id] = g
    order[g.router.id] = 10
    touched = a.update(graphs, order, {g.router.id}, 3)
    assert {("floatingips", f) for f in gone} <= touched
    assert not {k for k in touched if k[0] == "floatingips" and k[1] not in gone}
    assert not {k for k in touched if k[0] == "routers"}

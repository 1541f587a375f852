"""The lab's pure parts (no root): counter parsing, row judging with fabricated counters, check
planning and scheduling, LabInfo JSON, the nft texts."""
from __future__ import annotations

import json

import pytest

from dvrnet.lab.checks import (
    Check,
    Traffic,
    delta,
    judge_arp,
    judge_fg,
    judge_flat,
    judge_gateway_path,
    parse_counters,
    per_gateway,
    plan_checks,
    schedule,
)
from dvrnet.lab.info import GatewayInfo, LabInfo, NodeInfo, RouterInfo, VmInfo
from dvrnet.lab.world import WorldSpec, bridge_rules_nft, gateway_counters_nft, world_info

GWS = ["red", "green"]
FIP = "203.0.113.10"


def C(**kw):
    """Counters: C(red_in_src=3) -> {(red, in_src, FIP, icmp): 3}."""
    out = {}
    for k, v in kw.items():
        gw, st = k.split("_", 1)
        out[(gw, st, FIP, "icmp")] = v
    return out


def ok2():
    return Traffic(sent=2, received=2)


def test_parse_counters_and_delta():
    js = json.dumps({"nftables": [{"metainfo": {}}, {"set": {"name": "in_src", "elem": [
        {"elem": {"val": {"concat": [FIP, "icmp"]}, "counter": {"packets": 4, "bytes": 336}}},
        {"elem": {"val": {"concat": ["198.51.100.5", "tcp"]}, "counter": {"packets": 7, "bytes": 1}}}]}},
        {"set": {"name": "other", "elem": []}}]})
    c = parse_counters("red", js)
    assert c == {("red", "in_src", FIP, "icmp"): 4, ("red", "in_src", "198.51.100.5", "tcp"): 7}
    after = dict(c)
    after[("red", "in_src", FIP, "icmp")] = 6
    after[("green", "out_dst", FIP, "icmp")] = 1
    d = delta(c, after)
    assert d == {("red", "in_src", FIP, "icmp"): 2, ("green", "out_dst", FIP, "icmp"): 1}
    assert per_gateway(d, FIP, "icmp") == {"red": {"in_src": 2}, "green": {"out_dst": 1}}
    assert per_gateway(d, FIP, "tcp") == {}


def test_gateway_path_passes_only_through_its_own_gateway():
    obs, ok = judge_gateway_path(FIP, "icmp", "red", GWS, C(red_in_src=2, red_out_dst=2), ok2())
    assert ok and "red(in_src=2,out_dst=2)" in obs
    # the reply left through the other subnet's gateway (S3)
    obs, ok = judge_gateway_path(FIP, "icmp", "red", GWS, C(red_out_dst=2, green_in_src=2), ok2())
    assert not ok and "also crossed green" in obs and "nothing from" in obs
    # one direction missing
    assert not judge_gateway_path(FIP, "icmp", "red", GWS, C(red_in_src=2), ok2())[1]
    # fewer counted than replies: some went another way
    assert not judge_gateway_path(FIP, "icmp", "red", GWS, C(red_in_src=1, red_out_dst=1), ok2())[1]
    # a hairpin at the right gateway (FIP as destination coming from the segment)
    obs, ok = judge_gateway_path(FIP, "icmp", "red", GWS, C(red_in_src=2, red_out_dst=2, red_in_dst=2), ok2())
    assert not ok and "hairpin at red" in obs
    # counters right but no replies
    assert not judge_gateway_path(FIP, "icmp", "red", GWS, C(red_in_src=2, red_out_dst=2), Traffic(2, 0))[1]
    # nothing happened at all (no data plane): fails
    assert not judge_gateway_path(FIP, "icmp", "red", GWS, {}, Traffic(2, 0))[1]


def test_gateway_path_tcp_checks_the_peer_address():
    d = {("red", "in_src", FIP, "tcp"): 4, ("red", "out_dst", FIP, "tcp"): 5}
    assert judge_gateway_path(FIP, "tcp", "red", GWS, d, Traffic(1, 1, peer=FIP), expect_peer=FIP)[1]
    obs, ok = judge_gateway_path(FIP, "tcp", "red", GWS, d, Traffic(1, 1, peer="10.0.1.5"), expect_peer=FIP)
    assert not ok and "peer saw 10.0.1.5" in obs
    assert not judge_gateway_path(FIP, "tcp", "red", GWS, d, Traffic(1, 0, error="tcp: timed out"), expect_peer=FIP)[1]


def test_flat_requires_success_and_no_gateway_packets():
    other = "198.51.100.11"
    assert judge_flat([FIP, other], "icmp", {}, ok2())[1]
    obs, ok = judge_flat([FIP, other], "icmp", C(red_in_src=2), ok2())
    assert not ok and "crossed red" in obs
    # other protocols' counters do not interfere (they run in the same round)
    assert judge_flat([FIP, other], "tcp", C(red_in_src=2), Traffic(1, 1, peer=FIP), expect_peer=FIP)[1]
    # flat because nothing was sent: fails
    assert not judge_flat([FIP, other], "icmp", {}, Traffic(2, 0))[1]
    assert not judge_flat([FIP], "tcp", {}, Traffic(1, 1, peer="10.0.1.5"), expect_peer=FIP)[1]


def test_arp_and_fg_judges():
    assert judge_arp([], None)[1]
    assert not judge_arp(["aa:bb:cc:dd:ee:ff"], None)[1]
    assert judge_arp(["AA:bb:cc:dd:ee:ff"] * 3, ["aa:bb:cc:dd:ee:ff"])[1]
    assert not judge_arp(["aa:bb:cc:dd:ee:ff", "aa:bb:cc:dd:ee:00"], ["aa:bb:cc:dd:ee:ff"])[1]
    assert not judge_arp([], ["aa:bb:cc:dd:ee:ff"])[1]
    assert not judge_arp([], None, error="no fg- port on any node")[1]
    assert judge_fg(Traffic(2, 0), 0, {})[1]
    assert not judge_fg(Traffic(2, 1), 0, {})[1]
    assert not judge_fg(Traffic(2, 0), 2, {})[1]
    assert not judge_fg(Traffic(2, 0), 0, {"red": {"in_src": 2}})[1]
    assert not judge_fg(Traffic(0, 0, error="x"), 0, {})[1]
    assert judge_fg(Traffic(2, 2), 0, {}, control=True)[1]
    assert not judge_fg(Traffic(2, 0), 0, {}, control=True)[1]


def seed_like_info() -> LabInfo:
    info = world_info(WorldSpec(prefix="dvu-", state_dir="/nonexistent"))
    vm = lambda n, node, ip, fip, sub, r: VmInfo(n, node, f"dvu-{n}", "net", "nid", "pid", "fa:16:3e:00:00:10", ip, 24,
                                                   "10.0.1.1", fip, sub, r)
    info.vms = [vm("vm1", "compute1", "10.0.1.5", "203.0.113.10", "red", "router1"),
                vm("vm2", "compute2", "10.0.1.6", "198.51.100.11", "green", "router1"),
                vm("vm7", "compute1", "10.0.1.7", "198.51.100.12", "green", "router1"),
                vm("vm3", "compute1", "10.0.2.5", None, None, "router1"),
                vm("vm6", "compute2", "10.0.3.5", None, None, "router2")]
    info.routers = [RouterInfo("router1", "r1", "network1", ["203.0.113.5"], ["net1", "net2"]),
                    RouterInfo("router2", "r2", "network1", [], ["net3"])]
    return info


def test_plan_checks_covers_issue_5():
    info = seed_like_info()
    checks = plan_checks(info)
    names = [c.name for c in checks]
    assert len(names) == len(set(names))
    for proto in ("icmp", "tcp"):
        mine = [c for c in checks if c.proto == proto]
        assert sum(c.group == "internet → FIP" for c in mine) == 3
        assert sum(c.group == "FIP → internet" for c in mine) == 3
        assert any(c.group == "FIP → FIP same node" for c in mine)
        assert any(c.group == "FIP → FIP other node" for c in mine)
    c = next(c for c in checks if c.name == "internet → vm2 FIP 198.51.100.11 (TCP)")
    assert (c.kind, c.via, c.addr, c.expect_peer, c.src_ns) == ("gw", "green", "198.51.100.11", "192.0.2.10", "dvu-inet")
    c = next(c for c in checks if c.name == "vm1 → internet as 203.0.113.10 (ICMP)")
    assert (c.via, c.src_ns, c.dst) == ("red", "dvu-vm1", "192.0.2.10")
    # same-node pair prefers the other external subnet: vm1 (red) -> vm7 (green)
    c = next(c for c in checks if c.name.startswith("vm1 → vm7"))
    assert c.kind == "flat" and set(c.flat) == {"203.0.113.10", "198.51.100.12"}
    snat = next(c for c in checks if c.name == "vm3 (no FIP) → internet via SNAT (TCP)")
    assert (snat.via, snat.addr, snat.expect_peer, snat.error) == ("red", "203.0.113.5", "203.0.113.5", None)
    s2f = next(c for c in checks if c.name.startswith("vm3 (SNAT) → vm2"))
    assert s2f.kind == "flat" and set(s2f.flat) == {"203.0.113.5", "198.51.100.11"}
    # router2 has no gateway address yet: its SNAT checks exist and carry the reason they must fail
    bad = next(c for c in checks if c.name == "vm6 (no FIP) → internet via SNAT (ICMP)")
    assert bad.error and "router2" in bad.error


def test_schedule_rounds_have_disjoint_keys_and_keep_every_check():
    checks = plan_checks(seed_like_info())
    rounds = schedule(checks)
    assert sorted(c.name for r in rounds for c in r) == sorted(c.name for c in checks)
    for r in rounds:
        seen = set()
        for c in r:
            assert not (seen & c.keys), c.name
            seen |= c.keys
    assert len(rounds) < len(checks) / 2


def test_labinfo_json_roundtrip(tmp_path):
    info = seed_like_info()
    info.state_dir = str(tmp_path)
    info.nodes[0].agent_pid = 1234
    info.server_url = "http://127.0.0.1:9696"
    info.save()
    back = LabInfo.load(str(tmp_path))
    assert back == info
    d = json.loads(info.to_json())
    assert {"vms", "gateways", "internet_netns", "internet_address", "nodes", "server_url"} <= set(d)
    assert d["vms"][0]["fip"] == "203.0.113.10" and d["vms"][3]["fip"] is None
    assert info.gateway_for("198.51.100.7").name == "green" and info.gateway_for("10.0.0.1") is None


def test_nft_texts():
    t = bridge_rules_nft(["10.0.2.1", "10.0.1.1"], ["FA:16:3E:00:00:01"], "fa:16:3f:00:00:02")
    kinds = '{ "bond", "geneve", "gretap", "team", "vlan", "vxlan" }'
    assert f'meta iifkind {kinds} arp saddr ip {{ 10.0.1.1, 10.0.2.1 }} counter drop' in t
    assert f'meta oifkind {kinds} arp daddr ip {{ 10.0.1.1, 10.0.2.1 }} counter drop' in t
    assert 'ether saddr { fa:16:3e:00:00:01 } counter ether saddr set fa:16:3f:00:00:02' in t
    assert t.startswith("add table bridge dvrnet\ndelete table bridge dvrnet\n")
    empty = bridge_rules_nft([], [], "fa:16:3f:00:00:02")
    assert "{ }" not in empty and "drop" not in empty
    g = gateway_counters_nft()
    for s in ("in_src", "in_dst", "out_src", "out_dst"):
        assert f"set {s} " in g


def test_prefix_validation():
    with pytest.raises(ValueError):
        WorldSpec(prefix="")
    with pytest.raises(ValueError):
        WorldSpec(prefix="dvl")
    assert WorldSpec(prefix="dvl12345-").node_prefix(WorldSpec().nodes[0]) == "dvl12345-c1-"


def test_check_keys():
    c = Check("x", "g", "flat", "tcp", "ns", "1.2.3.4", flat=("a", "b"))
    assert c.keys == {("a", "tcp"), ("b", "tcp")}
    assert NodeInfo and GatewayInfo  # public names


def test_l2_complaints_parse_the_kernels_words(tmp_path):
    from dvrnet.lab.kmsg import KernelLog, KernelLogUnreadable, l2_complaints
    msgs = [("brqe8cd9c53-27: received packet on vx-e8cd9c53-27 with own address as source address "
             "(addr:02:30:70:07:14:a1, vlan:0)"),
            "IPv6: qr-a9f2af7c-88: IPv6 duplicate address fe80::f816:3eff:fed2:d5df used by fa:16:3f:00:00:01 detected!",
            "brq1: port 3(tap7e7220bb770) entered disabled state"]
    assert [c.kind for c in l2_complaints(msgs)] == ["own address", "duplicate address"]
    assert [c.kind for c in l2_complaints(msgs, {"qr-a9f2af7c-88"})] == ["duplicate address"]
    assert [c.devices for c in l2_complaints(msgs, {"vx-e8cd9c53-27"})] == [("brqe8cd9c53-27", "vx-e8cd9c53-27")]
    assert l2_complaints(msgs, {"qr-other"}) == []
    with pytest.raises(KernelLogUnreadable):
        KernelLog(str(tmp_path / "no-such-kmsg"))

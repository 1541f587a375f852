"""Renaming the bridge ends of upstream's ports during a takeover (kernel/takeover.py `rename`), on
real veths in a real bridge (root): renamed while up the port keeps its carrier (its peer never
sees it go down) and gets dvrnet's MAC; where the kernel refuses the live rename, the fallback
takes every refused port down, renames and brings it up again in one batch; a port that cannot be
renamed at all is reported as that op's failure and left up under its old name, the others are
still renamed."""
from __future__ import annotations

import json
import subprocess

import pytest

from dvrnet.kernel import takeover as K
from dvrnet.reconcile.takeover import UpstreamPeerAdopt

pytestmark = pytest.mark.root


def sh(*args: str) -> str:
    return subprocess.run(args, check=True, capture_output=True, text=True).stdout


def links(ns: str) -> dict[str, dict]:
    return {x["ifname"]: x for x in json.loads(sh("ip", "-j", "-n", ns, "link", "show"))}


def carrier_changes(ns: str, dev: str) -> int:
    return int(sh("ip", "netns", "exec", ns, "cat", f"/sys/class/net/{dev}/carrier_changes").strip())


@pytest.fixture
def bridge(netns_prefix):
    """A bridge namespace with two upstream-named bridge ends `tapa`/`tapb`, their namespace ends
    `qr-a`/`qr-b` in a router namespace."""
    b, r = netns_prefix + "br", netns_prefix + "rt"
    for ns in (b, r):
        sh("ip", "netns", "add", ns)
    sh("ip", "-n", b, "link", "add", "brq", "type", "bridge")
    sh("ip", "-n", b, "link", "set", "brq", "up")
    for x in ("a", "b"):
        sh("ip", "-n", b, "link", "add", f"tap{x}", "type", "veth", "peer", "name", f"qr-{x}", "netns", r)
        sh("ip", "-n", b, "link", "set", f"tap{x}", "master", "brq", "up")
        sh("ip", "-n", r, "link", "set", f"qr-{x}", "up")
    return b, r


def test_live_rename_keeps_the_carrier(bridge):
    b, r = bridge
    before = {x: carrier_changes(r, f"qr-{x}") for x in ("a", "b")}
    ops = [UpstreamPeerAdopt(b, old=f"tap{x}", new=f"dv-{x}", mac=f"02:00:00:00:00:0{i}")
           for i, x in enumerate(("a", "b"), start=1)]
    assert K.rename(b, ops) == []
    got = links(b)
    assert "tapa" not in got and "tapb" not in got
    assert got["dv-a"]["address"] == "02:00:00:00:00:01" and got["dv-b"]["address"] == "02:00:00:00:00:02"
    assert all("UP" in got[d]["flags"] and got[d].get("master") == "brq" for d in ("dv-a", "dv-b"))
    assert {x: carrier_changes(r, f"qr-{x}") for x in ("a", "b")} == before, "the peer lost its carrier"


def test_refused_live_rename_falls_back_to_down_rename_up(bridge, monkeypatch):
    b, r = bridge
    live = UpstreamPeerAdopt.live_line
    # tapb's live rename refused, as kernels before 6.2 do for a link that is up: here its live
    # line names a device that does not exist, so the fallback path runs for it
    monkeypatch.setattr(UpstreamPeerAdopt, "live_line",
                        lambda op: f"link set dev nosuch-{op.old} name {op.new}" if op.old == "tapb" else live(op))
    ops = [UpstreamPeerAdopt(b, old="tapa", new="dv-a"), UpstreamPeerAdopt(b, old="tapb", new="dv-b", mac="02:00:00:00:00:02")]
    before_b = carrier_changes(r, "qr-b")
    assert K.rename(b, ops) == []
    got = links(b)
    assert {"dv-a", "dv-b"} <= set(got) and not {"tapa", "tapb"} & set(got)
    assert got["dv-b"]["address"] == "02:00:00:00:00:02" and "UP" in got["dv-b"]["flags"]
    assert got["dv-b"].get("master") == "brq"
    assert carrier_changes(r, "qr-b") == before_b + 2, "the fallback takes the link down and up once"


def test_a_port_that_cannot_be_renamed_is_reported(bridge):
    b, _r = bridge
    sh("ip", "-n", b, "link", "add", "dv-b", "type", "bridge")        # the new name is taken
    ops = [UpstreamPeerAdopt(b, old="tapa", new="dv-a"), UpstreamPeerAdopt(b, old="tapb", new="dv-b")]
    errors = K.rename(b, ops)
    assert [op for op, _m in errors] == [ops[1]], errors
    got = links(b)
    assert "dv-a" in got and "tapb" in got and "UP" in got["tapb"]["flags"]

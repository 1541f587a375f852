"""The whole lab (root): world + server + 3 agents + the seed's resources through the API; every
check passes; a deliberate break (the green subnet's fip table pointed at red's gateway) makes the
green FIPs' outbound rows fail; `down` leaves nothing."""
from __future__ import annotations

import json
import subprocess
import time

import pytest

from dvrnet.lab.checks import plan_checks, run_checks

from .conftest import unique_prefix

pytestmark = pytest.mark.root


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    from dvrnet.lab.down import down
    from dvrnet.lab.up import up
    prefix = unique_prefix()
    state = str(tmp_path_factory.mktemp("lab") / "state")
    try:
        t = time.monotonic()
        info = up(prefix, state)
        yield info, time.monotonic() - t
    finally:
        rep = down(prefix, state)
        assert rep.leftover_namespaces == []
        names = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False).stdout.split()
        assert not [n for n in names if n.startswith(prefix)]
        ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=False).stdout
        assert state not in ps and prefix not in ps, "lab processes left behind"


def test_lab_up_and_every_check_passes(lab):
    info, took = lab
    assert took < 60, took
    assert len(info.vms) == 8 and sum(v.fip is not None for v in info.vms) == 6
    assert all(n.agent_pid for n in info.nodes) and info.server_url
    t = time.monotonic()
    rows = run_checks(info)
    check_s = time.monotonic() - t
    bad = [r for r in rows if not r.passed]
    assert not bad, "\n".join(f"{r.check}: {r.observed}" for r in bad)
    assert len(rows) > 60 and check_s < 30, (len(rows), check_s)


def test_a_broken_subnet_table_is_reported(lab):
    info, _ = lab
    green = next(g for g in info.gateways if g.name == "green")
    red = next(g for g in info.gateways if g.name == "red")
    broken = []
    for ns in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False).stdout.split():
        if not (ns.startswith(info.prefix) and "-fip-" in ns):
            continue
        routes = json.loads(subprocess.run(["ip", "-j", "-n", ns, "route", "show", "table", "all"],
                                           capture_output=True, text=True, check=False).stdout)
        for r in routes:
            if r.get("dst") == "default" and r.get("gateway") == green.address:
                subprocess.run(["ip", "-n", ns, "route", "replace", "default", "via", red.address, "dev", r["dev"],
                                "onlink", "table", str(r["table"]), "proto", str(r.get("protocol", "static"))],
                               check=True)
                broken.append(ns)
    assert broken
    checks = [c for c in plan_checks(info) if c.group == "FIP → internet"]
    rows = run_checks(info, checks, segment=False)
    rows = [r for r in rows if r.group == "FIP → internet"]
    assert len(rows) == 12
    for r in rows:
        is_green = info.gateway_for(r.check.split(" as ")[1].split()[0]).name == "green"
        assert r.passed != is_green, r
        if is_green:
            assert "red" in r.observed

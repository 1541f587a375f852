"""`dvrnet lab up --extra-fips N` (root): N more FIPs on ports of their own bound to compute1 and
compute2, from the two extra external /18s (each with its own gateway namespace), made with bulk
requests; the long step's progress as plain lines when stderr is not a terminal (issue 17 item 5);
every node's fip- namespaces hold the /32s of all of them, an extra FIP traces right inbound, and
`lab check` still proves the seed's paths. (Scales of 1,000 and more: `dvrnet bench`.)"""
from __future__ import annotations

import ipaddress
import json
import subprocess
import sys

import httpx
import pytest

from .conftest import unique_prefix

pytestmark = pytest.mark.root
N = 40


def test_lab_up_with_extra_fips_shows_progress(tmp_path):
    from dvrnet.lab.down import down
    prefix = unique_prefix()
    state = str(tmp_path / "state")
    try:
        p = subprocess.run([sys.executable, "-m", "dvrnet.cli", "lab", "up", "--prefix", prefix, "--state-dir", state,
                            "--extra-fips", str(N)], capture_output=True, text=True, timeout=300, check=False)
        assert p.returncode == 0, p.stderr[-3000:]
        lines = p.stderr.splitlines()
        assert f"lab {N} more FIPs through the API: 0/{N}" in lines, lines
        assert any(x.startswith(f"lab {N} more FIPs through the API: {N}/{N} in ") for x in lines), lines
        assert not any("\x1b[" in x for x in lines)                  # plain lines, no terminal drawing
        info = json.loads(subprocess.run([sys.executable, "-m", "dvrnet.cli", "lab", "info", "--json", "--state-dir", state],
                                         capture_output=True, text=True, check=True).stdout)
        seed_fips = sum(1 for v in info["vms"] if v["fip"])
        c = httpx.Client(base_url=info["server_url"], timeout=30)
        fips = c.get("/v2.0/floatingips").json()["floatingips"]
        c.close()
        assert len(fips) == seed_fips + N
        extra_fips = [f for f in fips if f["description"].startswith("extra fip")]
        assert len(extra_fips) == N
        blocks = {"xfip1": ipaddress.ip_network("100.64.64.0/18"), "xfip2": ipaddress.ip_network("100.64.128.0/18")}
        assert {g["name"]: g["subnet"] for g in info["gateways"] if g["name"] in blocks} == \
            {k: str(v) for k, v in blocks.items()}
        for f in extra_fips:
            assert any(ipaddress.ip_address(f["floating_ip_address"]) in b for b in blocks.values()), f
        assert {sum(ipaddress.ip_address(f["floating_ip_address"]) in b for f in extra_fips)
                for b in blocks.values()} == {N // 2}
        ports = {p["id"]: p for p in httpx.get(info["server_url"] + "/v2.0/ports", timeout=30).json()["ports"]}
        hosts = [ports[f["port_id"]]["binding:host_id"] for f in extra_fips]
        assert {h: hosts.count(h) for h in set(hosts)} == {"compute1": N // 2, "compute2": N // 2}
        for g in info["gateways"]:
            if g["name"] in blocks:
                assert g["netns"] in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True,
                                                    check=False).stdout
        from dvrnet.lab.info import LabInfo
        from dvrnet.lab.steps import wait_converged
        wait_converged(LabInfo.load(state), timeout=60)
        held = set()
        for ns in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False).stdout.split():
            if ns.startswith(prefix) and "-fip-" in ns:
                routes = json.loads(subprocess.run(["ip", "-j", "-n", ns, "route", "show", "table", "main"],
                                                   capture_output=True, text=True, check=False).stdout or "[]")
                held |= {r["dst"] for r in routes if r.get("protocol") in ("dvrnet", "94")}
        assert held == {f["floating_ip_address"] for f in fips}
        extra = next(f for f in fips if f["description"].startswith("extra fip"))
        t = subprocess.run([sys.executable, "-m", "dvrnet.cli", "trace", "--inbound", extra["floating_ip_address"],
                            "--state-dir", state, "--json"], capture_output=True, text=True, timeout=60, check=False)
        assert t.returncode == 0, t.stdout[-3000:] + t.stderr
        assert json.loads(t.stdout)["agree"]
        chk = subprocess.run([sys.executable, "-m", "dvrnet.cli", "lab", "check", "--state-dir", state, "--json"],
                             capture_output=True, text=True, timeout=300, check=False)
        out = json.loads(chk.stdout)
        assert chk.returncode == 0 and out["passed"] and out["rows"], \
            [r for r in out["rows"] if not r["passed"]] or chk.stderr[-2000:]
    finally:
        down(prefix, state)
    left = [n for n in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False).stdout.split()
            if n.startswith(prefix)]
    assert not left, left

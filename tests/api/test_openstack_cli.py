"""The real `openstack` client drives the server (auth none with discovery, and token auth):
external network with three subnets, router with a gateway, tenant network, interface, port,
FIP with --subnet (its status following the agent's report), the refused subnet delete showing
Neutron's message, then teardown in reverse. About 27 client calls (~1 s each)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from api_helpers import ADMIN_TOKEN, ALICE_TOKEN, ok, running_server

from dvrnet.api.app import create_app

OPENSTACK = Path(sys.executable).parent / "openstack"
pytestmark = pytest.mark.skipif(not OPENSTACK.exists() and not shutil.which("openstack"),
                                reason="python-openstackclient is not installed in this environment")


class Osc:
    def __init__(self, url: str, tmp: Path, auth: list[str]):
        self.url, self.auth, self.tmp = url, auth, tmp
        (tmp / "clouds.yaml").write_text("clouds: {}\n")
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
        self.env.update(OS_CLIENT_CONFIG_FILE=str(tmp / "clouds.yaml"), HOME=str(tmp))
        self.calls = 0

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        exe = str(OPENSTACK) if OPENSTACK.exists() else shutil.which("openstack")
        cmd = [exe, *self.auth, "--os-endpoint", self.url, *args]
        self.calls += 1
        r = subprocess.run(cmd, capture_output=True, text=True, env=self.env, cwd=self.tmp, timeout=60, check=False)
        if check:
            assert r.returncode == 0, f"{' '.join(args)}: rc={r.returncode}\n{r.stdout}\n{r.stderr}"
        return r

    def value(self, *args: str) -> str:
        return self.run(*args, "-f", "value", "-c", "id").stdout.strip()

    def json(self, *args: str):
        return json.loads(self.run(*args, "-f", "json").stdout)


def test_openstack_client_auth_none(db_url, tmp_path):
    with running_server(create_app(db_url)) as url:
        for name, mode in (("network1", "dvr_snat"), ("compute1", "dvr")):
            ok(httpx.post(url + "/v2.0/dvrnet/hosts", json={"host": {"name": name, "mode": mode}}))
        o = Osc(url, tmp_path, ["--os-auth-type", "none"])
        ext = o.value("network", "create", "--external", "ext-net")
        s_a = o.value("subnet", "create", "--network", "ext-net", "--subnet-range", "203.0.113.0/24", "ext-a")
        s_b = o.value("subnet", "create", "--network", "ext-net", "--subnet-range", "198.51.100.0/24",
                      "--service-type", "network:floatingip", "ext-b")
        fg = o.json("subnet", "create", "--network", "ext-net", "--subnet-range", "100.64.0.0/24",
                    "--gateway", "none", "--service-type", "network:floatingip_agent_gateway", "fg-sub")
        assert fg["gateway_ip"] is None and fg["service_types"] == ["network:floatingip_agent_gateway"]
        router = o.json("router", "create", "--external-gateway", "ext-net", "r1")
        gw = router["external_gateway_info"]
        assert gw["network_id"] == ext and gw["external_fixed_ips"][0]["subnet_id"] == s_a
        o.value("network", "create", "priv")
        o.value("subnet", "create", "--network", "priv", "--subnet-range", "10.0.0.0/24", "priv-sub")
        o.run("router", "add", "subnet", "r1", "priv-sub")
        port = o.json("port", "create", "--network", "priv", "--device-owner", "compute:nova",
                      "--host", "compute1", "vm1")
        assert port["fixed_ips"][0]["ip_address"].startswith("10.0.0.")
        fip = o.json("floating", "ip", "create", "--subnet", s_b, "--port", "vm1", "ext-net")
        assert fip["floating_ip_address"].startswith("198.51.100.") and fip["router_id"] == router["id"]
        # its status is the serving agent's report (docs/status.md): DOWN until compute1 reports it
        assert fip["status"] == "DOWN"
        entry = {"id": fip["id"], "port_id": port["id"], "fixed_ip_address": fip["fixed_ip_address"]}
        ok(httpx.put(url + "/v2.0/dvrnet/hosts/compute1/status",
                     json={"status": {"revision": 1, "floatingips": [{**entry, "status": "ERROR", "reason": "test"}]}}))
        assert o.json("floating", "ip", "show", fip["id"])["status"] == "ERROR"
        ok(httpx.put(url + "/v2.0/dvrnet/hosts/compute1/status",
                     json={"status": {"revision": 2, "floatingips": [{**entry, "status": "ACTIVE"}]}}))
        assert o.json("floating", "ip", "show", fip["id"])["status"] == "ACTIVE"
        # compute1's agent dies (its last heartbeat 2 minutes old): the agent list shows it, its
        # FIP keeps its last status (as in Neutron)
        import sqlite3
        old = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 120))
        with sqlite3.connect(db_url.removeprefix("sqlite:///")) as db:
            db.execute("UPDATE hosts SET heartbeat_at = ? WHERE name = 'compute1'", (old,))
        ok(httpx.put(url + "/v2.0/dvrnet/hosts/network1/status", json={"status": {"revision": 2}}))  # its heartbeat
        alive = {a["Host"]: a["Alive"] for a in o.json("network", "agent", "list")}
        assert alive["compute1"] in (False, "XXX") and alive["network1"] in (True, ":-)"), alive
        assert ok(httpx.get(url + f"/v2.0/floatingips/{fip['id']}"))["floatingip"]["status"] == "ACTIVE"
        fg_ports = ok(httpx.get(url + "/v2.0/ports?device_owner=network:floatingip_agent_gateway"))["ports"]
        assert [p["fixed_ips"][0]["ip_address"] for p in fg_ports] == ["100.64.0.1"]

        refused = o.run("subnet", "delete", "ext-b", check=False)
        assert refused.returncode != 0
        assert f"Unable to complete operation on subnet {s_b}" in refused.stderr + refused.stdout

        o.run("floating", "ip", "delete", fip["id"])
        o.run("port", "delete", "vm1")
        o.run("router", "remove", "subnet", "r1", "priv-sub")
        o.run("router", "delete", "r1")
        o.run("subnet", "delete", "priv-sub")
        o.run("network", "delete", "priv")
        o.run("subnet", "delete", "ext-b", "fg-sub", "ext-a")
        o.run("network", "delete", "ext-net")
        assert o.json("network", "list") == []
        assert ok(httpx.get(url + "/v2.0/ports"))["ports"] == []
        assert o.calls <= 24


def test_openstack_client_token(token_app, tmp_path):
    with running_server(token_app) as url:
        admin = Osc(url, tmp_path, ["--os-token", ADMIN_TOKEN])
        alice = Osc(url, tmp_path, ["--os-token", ALICE_TOKEN])
        admin.value("network", "create", "--external", "ext-net")
        alice.value("network", "create", "alice-net")
        sub = alice.json("subnet", "create", "--network", "alice-net", "--subnet-range", "10.8.0.0/24", "alice-sub")
        assert sub["project_id"] == "alice"
        names = alice.run("network", "list", "-f", "value", "-c", "Name").stdout.split()
        assert sorted(names) == ["alice-net", "ext-net"]
        refused = alice.run("network", "create", "--external", "mine", check=False)
        assert refused.returncode != 0 and "disallowed by policy" in refused.stderr + refused.stdout

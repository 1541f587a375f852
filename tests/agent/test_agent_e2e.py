"""The agent against a real server and real namespaces: a full pass converges, a second pass
changes nothing, and a FIP created through the API reaches the kernel within a second."""
from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest

from waiting import wait_for

pytestmark = pytest.mark.root


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(tmp_path):
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen([sys.executable, "-m", "dvrnet.cli", "server", "--bind", f"127.0.0.1:{port}",
                             "--state-dir", str(tmp_path)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: proc.poll() is not None or httpx.get(url + "/", timeout=0.5).status_code == 200, 30,
                 f"the server to answer on {url}")
        if proc.poll() is not None:
            raise RuntimeError("server did not start: " + proc.stderr.read().decode()[-2000:])
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


def _post(c, path, body):
    r = c.post(path, json=body)
    assert r.status_code in (200, 201), r.text
    return next(iter(r.json().values()))


def _build(url):
    c = httpx.Client(base_url=url, timeout=10)
    _post(c, "/v2.0/dvrnet/hosts", {"host": {"name": "compute1", "mode": "dvr"}})
    _post(c, "/v2.0/dvrnet/hosts", {"host": {"name": "network1", "mode": "dvr_snat"}})
    ext = _post(c, "/v2.0/networks", {"network": {"name": "public", "router:external": True}})
    red = _post(c, "/v2.0/subnets", {"subnet": {"network_id": ext["id"], "cidr": "203.0.113.0/24", "ip_version": 4, "name": "red"}})
    _post(c, "/v2.0/subnets", {"subnet": {"network_id": ext["id"], "cidr": "198.51.100.0/24", "ip_version": 4, "name": "green"}})
    _post(c, "/v2.0/subnets", {"subnet": {"network_id": ext["id"], "cidr": "100.64.0.0/24", "ip_version": 4,
                                          "gateway_ip": None, "service_types": ["network:floatingip_agent_gateway"]}})
    net = _post(c, "/v2.0/networks", {"network": {"name": "net1", "mtu": 1450}})
    sub = _post(c, "/v2.0/subnets", {"subnet": {"network_id": net["id"], "cidr": "10.0.1.0/24", "ip_version": 4}})
    r = _post(c, "/v2.0/routers", {"router": {"name": "r1", "external_gateway_info": {"network_id": ext["id"]}}})
    assert c.put(f"/v2.0/routers/{r['id']}/add_router_interface", json={"subnet_id": sub["id"]}).status_code == 200
    ports = [_post(c, "/v2.0/ports", {"port": {"network_id": net["id"], "device_owner": "compute:nova",
                                               "binding:host_id": "compute1", "name": f"vm{i}"}}) for i in range(2)]
    fip = _post(c, "/v2.0/floatingips", {"floatingip": {"floating_network_id": ext["id"], "subnet_id": red["id"],
                                                        "port_id": ports[0]["id"]}})
    return c, ext, net, red, ports, fip


def _bridges(prefix, tenant_net_id):
    from dvrnet.plan.names import tenant_bridge
    node = f"{prefix}node"
    subprocess.run(["ip", "netns", "add", node], check=True)
    for br in ("br-ex", tenant_bridge(tenant_net_id)):
        subprocess.run(["ip", "-n", node, "link", "add", br, "type", "bridge"], check=True)
        subprocess.run(["ip", "-n", node, "link", "set", br, "up"], check=True)
    return node


def _agent_cmd(url, prefix, node, *extra):
    return [sys.executable, "-m", "dvrnet.cli", "agent", "--host", "compute1", "--mode", "dvr", "--server", url,
            "--netns-prefix", prefix, "--bridge-netns", node, "--log-level", "WARNING", *extra]


def test_agent_converges_and_follows_the_feed(server, netns_prefix, tmp_path):
    c, ext, net, _red, ports, fip = _build(server)
    node = _bridges(netns_prefix, net["id"])
    once = subprocess.run(_agent_cmd(server, netns_prefix, node, "--once"), capture_output=True, text=True, timeout=60, check=False)
    assert once.returncode == 0, once.stderr
    fip_ns = f"{netns_prefix}fip-{ext['id']}"
    routes = subprocess.run(["ip", "-n", fip_ns, "route", "show", "table", "main"], capture_output=True, text=True, check=False).stdout
    assert f"{fip['floating_ip_address']} via 169.254." in routes

    # second pass: nothing to do
    show = subprocess.run([sys.executable, "-m", "dvrnet.cli", "show", "compute1", "--server", server,
                           "--netns-prefix", netns_prefix, "--bridge-netns", node], capture_output=True, text=True, timeout=60, check=False)
    assert show.returncode == 0 and "kernel matches the model" in show.stdout, show.stdout + show.stderr

    # a running agent applies a new FIP when the feed wakes it: with no resync for 10 minutes and
    # the long-poll renewed every 25 s, a FIP in the kernel within 10 s came through the wake-up
    # (the latency itself is a benchmark's business: `dvrnet bench`, section 3)
    ready = tmp_path / "agent.ready"
    agent = subprocess.Popen(_agent_cmd(server, netns_prefix, node, "--ready-file", str(ready),
                                        "--resync-interval", "600"),
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        # its start-up pass converged: it follows the feed now
        wait_for(lambda: ready.exists() or agent.poll() is not None, 30, "the agent's first converged pass")
        assert agent.poll() is None, agent.stderr.read().decode()[-2000:]
        t0 = time.monotonic()
        new = _post(c, "/v2.0/floatingips", {"floatingip": {"floating_network_id": ext["id"], "port_id": ports[1]["id"]}})
        addr = new["floating_ip_address"]
        wait_for(lambda: addr in subprocess.run(["ip", "-n", fip_ns, "route", "show", f"{addr}/32"],
                                                capture_output=True, text=True, check=False).stdout,
                 10, "the FIP's /32 in the kernel, woken by the feed", step=0.01)
        print(f"FIP API->kernel latency: {(time.monotonic() - t0) * 1000:.0f} ms")
    finally:
        agent.send_signal(signal.SIGTERM)
        try:
            agent.wait(10)
        except subprocess.TimeoutExpired:
            agent.kill()


def test_once_with_an_unreachable_server_is_one_line_and_fails_within_seconds(netns_prefix):
    url = f"http://127.0.0.1:{_free_port()}"          # nothing listens there
    t0 = time.monotonic()
    p = subprocess.run(_agent_cmd(url, netns_prefix, f"{netns_prefix}node", "--once"), capture_output=True,
                       text=True, timeout=60, check=False)
    elapsed = time.monotonic() - t0
    assert p.returncode == 1, (p.returncode, p.stderr)
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("dvrnet: ") and url in lines[0], p.stderr
    assert elapsed < 10, f"--once took {elapsed:.1f} s to give up"



def test_show_writes_nothing_and_says_when_it_needs_root(server, netns_prefix):
    """`dvrnet show` is inspection: run where /etc/iproute2/rt_protos.d is an empty read-only
    directory (a private mount namespace) it still works — it registers nothing; run as nobody,
    where reading the namespaces needs root, it says so in one line."""
    import os
    import pathlib
    import site

    import dvrnet
    _c, _ext, net, _red, _ports, _fip = _build(server)
    node = _bridges(netns_prefix, net["id"])
    once = subprocess.run(_agent_cmd(server, netns_prefix, node, "--once"), capture_output=True, text=True,
                          timeout=60, check=False)
    assert once.returncode == 0, once.stderr
    show = ["-m", "dvrnet.cli", "show", "compute1", "--server", server, "--netns-prefix", netns_prefix,
            "--bridge-netns", node]
    private_ro = 'mount --make-rprivate / && mount -t tmpfs -o ro tmpfs /etc/iproute2/rt_protos.d && exec "$@"'
    ro = subprocess.run(["unshare", "--mount", "sh", "-c", private_ro, "sh", sys.executable, *show],
                        capture_output=True, text=True, timeout=60, check=False)
    assert ro.returncode == 0 and "kernel matches the model" in ro.stdout, ro.stdout + ro.stderr
    if not os.path.exists("/usr/bin/python3"):
        pytest.skip("no /usr/bin/python3 to run dvrnet as nobody (the venv's interpreter is under /root)")
    src = str(pathlib.Path(dvrnet.__file__).parent.parent)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": "/nonexistent",
           "PYTHONPATH": os.pathsep.join([src, *site.getsitepackages()])}
    p = subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "/usr/bin/python3", *show],
                       capture_output=True, text=True, timeout=60, check=False, env=env, cwd="/")
    assert p.returncode == 1, (p.returncode, p.stdout, p.stderr)
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("dvrnet: ") and "root" in lines[0], p.stderr
    assert "Traceback" not in p.stderr

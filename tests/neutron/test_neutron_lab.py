"""T1-T6 against a real neutron-server, then what only Neutron mode has: FIP statuses, an apply
failure reported as ERROR, kill -9 of an agent and of RabbitMQ under continuous ping.

One lab for the module (`lab up --control neutron`: PostgreSQL, RabbitMQ, neutron-server 25.2.3
from .venv-neutron, the L2 stand-in, one `dvrnet neutron-agent` per node), built with routers
without gateways and VMs without FIPs. T1-T6 are the very functions of tests/lab/test_t1_t6.py:
their HTTP calls go to Neutron's API; they wait for convergence (`steps.wait_converged`, which in
Neutron mode plans from the agent's own translation of `sync_routers`) and check the kernel and the
gateway counters. T5 (a subnet added to the external network): Neutron's L3 RPC notifies agents of
nothing for a new subnet (measured: no cast arrives on `l3_agent`); the agents read
`subnet.create.end` from Neutron's notification bus (`[dvrnet] listen_notifications`). The lab's
`neutron_resync_interval` is 300 s and every step must converge within CONVERGE (90 s), so T5
passing proves the subnet came through the listener, not through the periodic resync.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import needs
from dvrnet.lab import steps
from dvrnet.lab.checks import ping
from dvrnet.lab.info import LabInfo
from dvrnet.lab.neutron import RESYNC  # the lab's [dvrnet] neutron_resync_interval (300 s)
from dvrnet.scenarios.seed import SEED
from lab import test_t1_t6 as T

pytestmark = pytest.mark.root

CONVERGE = 90.0         # what one change may take through Neutron on a loaded 2-core machine;
assert CONVERGE < RESYNC  # well below the resync: every step is served by what Neutron sends

step = T.step
test_t1_router1_gets_the_gateway = T.test_t1_router1_gets_the_gateway
test_t2_router1_gateway_removed_releases_everything = T.test_t2_router1_gateway_removed_releases_everything
test_t3_router2_gateway_removed_router1_addresses_unchanged = T.test_t3_router2_gateway_removed_router1_addresses_unchanged
test_t4_fips_then_snat = T.test_t4_fips_then_snat
test_t5_subnet_added_to_the_external_network = T.test_t5_subnet_added_to_the_external_network
test_t6_second_external_network = T.test_t6_second_external_network


@pytest.fixture(scope="module")
def lab():
    needs.neutron_lab()
    from dvrnet.lab.down import down
    from dvrnet.lab.up import up
    prefix = f"dvq{os.getpid() % 100000}-"
    # not under pytest's tmp root: PostgreSQL runs as 'nobody' in the state dir, and every pytest
    # session (others may run beside this one) makes that root 0700 again
    base = tempfile.mkdtemp(prefix=prefix)
    os.chmod(base, 0o755)
    state = os.path.join(base, "state")
    c = None
    try:
        t0 = time.monotonic()
        info = up(prefix, state, gateways=False, fips=False, control="neutron", progress=print)
        print(f"neutron lab up in {time.monotonic() - t0:.1f}s")
        c = steps.api(info)
        public = next(n for n in steps.ok(c.get("/v2.0/networks"))["networks"] if n["router:external"])
        subnets = {s["name"]: s for s in steps.ok(c.get("/v2.0/subnets", params={"network_id": public["id"]}))["subnets"]}
        yield T.Ctx(info, c, public, subnets, converge_timeout=CONVERGE)
    finally:
        if c is not None:
            c.close()
        rep = down(prefix, state)
        left = [n for n in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True,
                                          check=False).stdout.split() if n.startswith(prefix)]
        assert not left and not rep.leftover_namespaces, f"namespaces left behind: {left}"
        ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=False).stdout
        shutil.rmtree(base, ignore_errors=True)
        assert state not in ps, "lab processes left behind"


# ------------------------------------------------------------------------------------------------
# helpers

def fip_status(ctx: T.Ctx, fip_id: str) -> str:
    return steps.ok(ctx.c.get(f"/v2.0/floatingips/{fip_id}"))["floatingip"]["status"]


def wait_status(ctx: T.Ctx, fip_id: str, want: str, timeout: float = CONVERGE) -> float:
    t0 = time.monotonic()
    while True:
        st = fip_status(ctx, fip_id)
        if st == want:
            return time.monotonic() - t0
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"FIP {fip_id} is {st}, not {want}, after {timeout:.0f}s")
        time.sleep(0.5)


def agents_alive(ctx: T.Ctx) -> dict[tuple[str, str], bool]:
    ags = steps.ok(ctx.c.get("/v2.0/agents"))["agents"]
    return {(a["agent_type"], a["host"]): a["alive"] for a in ags}


class Pinger:
    """`ping -i 0.05` from the internet host to ADDRESS for the duration; lost = sent - received."""

    def __init__(self, info: LabInfo, address: str):
        self.p = subprocess.Popen(["ip", "netns", "exec", info.internet_netns, "ping", "-n", "-q", "-i", "0.05",
                                   "-W", "1", address], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def stop(self) -> tuple[int, int]:
        self.p.send_signal(2)
        out, _ = self.p.communicate(timeout=10)
        line = next(x for x in out.splitlines() if "transmitted" in x)
        sent, recv = int(line.split()[0]), int(line.split()[3])
        return sent, recv


# ------------------------------------------------------------------------------------------------
# Neutron mode only

def test_t7_neutron_shows_the_agents_alive_and_fips_active(step):
    """The real client's view: every node's dvrnet agent is an alive L3 agent with its mode; a FIP
    created through Neutron answers ping and turns ACTIVE; disassociated it turns DOWN."""
    ctx = step
    alive = agents_alive(ctx)
    for n in ctx.info.nodes:
        assert alive.get(("L3 agent", n.name)) is True, alive
        assert alive.get(("Open vSwitch agent", n.name)) is True, alive
    l3 = {a["host"]: a for a in steps.ok(ctx.c.get("/v2.0/agents", params={"agent_type": "L3 agent"}))["agents"]}
    assert {h: a["configurations"]["agent_mode"] for h, a in l3.items()} == {"compute1": "dvr", "compute2": "dvr",
                                                                           "network1": "dvr_snat"}
    seed = {v.name: v.fip_subnet for v in SEED.vms}
    f = ctx.fip("vm1", seed["vm1"])
    wait_status(ctx, f["id"], "ACTIVE")
    ctx.converge()
    t = ping(ctx.info.internet_netns, f["floating_ip_address"], count=3, wait=2)
    assert t.received == 3, t
    assert l3["compute1"]["configurations"]["floating_ips"] >= 0
    steps.ok(ctx.c.put(f"/v2.0/floatingips/{f['id']}", json={"floatingip": {"port_id": None}}))
    wait_status(ctx, f["id"], "DOWN")
    steps.ok(ctx.c.delete(f"/v2.0/floatingips/{f['id']}"))
    ctx.converge()


def test_t8_apply_failure_is_reported_error(step, tmp_path):
    """compute2's agent runs with an `nft` whose every write fails (reads work): its new FIP cannot
    get its NAT and is reported ERROR; with nft back, the same FIP turns ACTIVE."""
    ctx = step
    from dvrnet.lab.neutron import NeutronLab, restart_agents
    lab = NeutronLab.load(ctx.info.state_dir)
    shim = tmp_path / "bin"
    shim.mkdir()
    real = shutil.which("nft")
    (shim / "nft").write_text("#!/bin/sh\n"                    # reads work, every write (-f) fails
                              'for a in "$@"; do [ "$a" = -f ] && { echo "nft: forced failure (test)" >&2; exit 1; }; done\n'
                              f'exec {real} "$@"\n')
    (shim / "nft").chmod(0o755)
    restart_agents(ctx.info, lab, env_path=f"{shim}:{os.environ.get('PATH', '/usr/bin:/bin')}",
                   nodes=("compute2",))
    f = ctx.fip("vm2", "green")
    try:
        wait_status(ctx, f["id"], "ERROR")
        t = ping(ctx.info.internet_netns, f["floating_ip_address"], count=1, wait=1)
        assert t.received == 0
        restart_agents(ctx.info, lab, nodes=("compute2",))
        wait_status(ctx, f["id"], "ACTIVE")
        ctx.converge()
        t = ping(ctx.info.internet_netns, f["floating_ip_address"], count=3, wait=2)
        assert t.received == 3, t
    finally:
        steps.ok(ctx.c.delete(f"/v2.0/floatingips/{f['id']}"))
    ctx.converge()


def test_t9_kill_agent_and_rabbitmq_under_ping(step):
    """kill -9 of compute1's agent while a new FIP is made on compute2, then kill -9 of RabbitMQ:
    an unrelated FIP (vm4's, on compute2) never loses a packet; after each, everything converges."""
    import signal

    from dvrnet.lab.neutron import NeutronLab, kill_rabbitmq, restart_rabbitmq, start_agents
    from dvrnet.lab.up import world_spec_for
    ctx = step
    lab = NeutronLab.load(ctx.info.state_dir)
    steady = ctx.fip("vm4", "red")
    wait_status(ctx, steady["id"], "ACTIVE")
    ctx.converge()
    pinger = Pinger(ctx.info, steady["floating_ip_address"])
    try:
        time.sleep(1)
        c1 = ctx.info.node("compute1")
        os.kill(c1.agent_pid, signal.SIGKILL)
        extra = ctx.fip("vm3", "green")                      # vm3 lives on compute1: served after restart
        spec = world_spec_for(SEED, ctx.info.prefix, ctx.info.state_dir)
        pids = start_agents(spec, lab, nodes=[n for n in spec.nodes if n.name == "compute1"])
        c1.agent_pid = pids["compute1"]
        ctx.info.save()
        wait_status(ctx, extra["id"], "ACTIVE")
        ctx.converge()
        killed = kill_rabbitmq(ctx.info.state_dir)
        assert killed
        time.sleep(3)
        restart_rabbitmq(ctx.info.state_dir, lab)
        time.sleep(2)
        sent, recv = pinger.stop()
        pinger = None
    finally:
        if pinger is not None:
            pinger.stop()
    assert sent > 50 and sent - recv == 0, f"unrelated FIP lost {sent - recv} of {sent} pings"
    # after RabbitMQ is back, a change is served again
    steps.ok(ctx.c.put(f"/v2.0/floatingips/{extra['id']}", json={"floatingip": {"port_id": None}}))
    wait_status(ctx, extra["id"], "DOWN")
    ctx.converge()
    t = ping(ctx.info.internet_netns, extra["floating_ip_address"], count=1, wait=1)
    assert t.received == 0
    for f in (steady, extra):
        steps.ok(ctx.c.delete(f"/v2.0/floatingips/{f['id']}"))
    ctx.converge()


def test_t10_metadata_proxy_from_the_operators_l3_agent_ini(lab):
    """Issue 13: `metadata_proxy_socket` in each node's l3_agent.ini (the lab's stand-in metadata
    agent) gives every router with interfaces on the node a proxy: a VM's request arrives with its
    router's id and its own address."""
    import json
    info = lab.info
    vms = [v for v in info.vms if v.router]
    assert vms
    for vm in vms:
        p = subprocess.run(["ip", "netns", "exec", vm.netns, "curl", "-s", "-f", "-m", "5",
                            "http://169.254.169.254/openstack/latest/meta_data.json"],
                           capture_output=True, text=True, check=False)
        assert p.returncode == 0, f"{vm.name}: no metadata answer ({p.returncode}: {p.stderr.strip()})"
        got = json.loads(p.stdout)
        assert got["agent"] == vm.node and got["path"] == "/openstack/latest/meta_data.json", got
        assert got["headers"]["x-neutron-router-id"] == info.router(vm.router).id, got
        assert got["headers"]["x-forwarded-for"] == vm.fixed_ip, got


def dvrnet_show(ctx: T.Ctx, host: str, what: str) -> str:
    """`dvrnet show HOST --WHAT --config-file <HOST's l3_agent.ini>`, as an operator runs it."""
    from dvrnet.lab.neutron import NeutronLab
    ini = NeutronLab.load(ctx.info.state_dir).agent_configs[host]
    r = subprocess.run([sys.executable, "-m", "dvrnet.cli", "show", host, f"--{what}", "--config-file", ini],
                       capture_output=True, text=True, timeout=120, check=False)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_t11_show_is_neutrons_model(step):
    """`dvrnet show --config-file` plans from what neutron-server says now, not from the kernel:
    vm1's FIP (compute1) is in compute1's desired state and not in compute2's, and --diff says the
    kernel matches; with compute1's agent stopped (SIGSTOP), the FIP deleted through the API shows
    as the operations that would remove it; the agent continued, the diff is empty again."""
    import signal
    ctx = step
    f = ctx.fip("vm1", "red")
    addr = f["floating_ip_address"]
    wait_status(ctx, f["id"], "ACTIVE")
    ctx.converge()
    assert addr in dvrnet_show(ctx, "compute1", "desired")
    assert addr not in dvrnet_show(ctx, "compute2", "desired")
    assert "compute1: kernel matches the model" in dvrnet_show(ctx, "compute1", "diff")
    pid = ctx.info.node("compute1").agent_pid
    os.kill(pid, signal.SIGSTOP)
    try:
        steps.ok(ctx.c.delete(f"/v2.0/floatingips/{f['id']}"))
        assert addr not in dvrnet_show(ctx, "compute1", "desired")
        diff = dvrnet_show(ctx, "compute1", "diff")
        assert addr in diff and "kernel matches" not in diff, diff
    finally:
        os.kill(pid, signal.SIGCONT)
    ctx.converge()
    assert "compute1: kernel matches the model" in dvrnet_show(ctx, "compute1", "diff")


class Forwarder:
    """A TCP forwarder 127.0.0.1:port -> 127.0.0.1:TARGET (threads): one more address of the
    broker, which kill() takes away (its listener and every connection through it, as a broker
    host that died)."""

    def __init__(self, target: int):
        import socket
        import threading
        self.target = target
        self.srv = socket.create_server(("127.0.0.1", 0))
        self.port = self.srv.getsockname()[1]
        self.accepted = 0
        self.open = 0
        self.socks: list = []
        self.dead = False
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        import socket
        import threading
        while True:
            try:
                c, _ = self.srv.accept()
            except OSError:
                return
            try:
                u = socket.create_connection(("127.0.0.1", self.target), timeout=5)
                u.settimeout(None)
            except OSError:
                c.close()
                continue
            with self.lock:
                if self.dead:           # accepted while kill() ran
                    c.close()
                    u.close()
                    return
                self.accepted += 1
                self.open += 1
                self.socks += [c, u]
            threading.Thread(target=self._pipe, args=(c, u, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(u, c, False), daemon=True).start()

    def _pipe(self, a, b, count: bool) -> None:
        import socket
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass
        for x in (a, b):
            try:
                x.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if count:
            with self.lock:
                self.open -= 1

    def kill(self) -> None:
        import socket
        with self.lock:
            self.dead = True
            socks = list(self.socks)
        try:        # wakes the accept() blocked in the other thread (close() alone does not, on Linux)
            self.srv.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.srv.close()
        for x in socks:
            try:
                x.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def test_t12_transport_url_with_several_hosts_over_tls(step):
    """compute2's agent restarted with `transport_url = rabbit://…@127.0.0.1:A,…@127.0.0.1:B/` and
    `[oslo_messaging_rabbit] ssl = True`, `ssl_ca_file` = the lab broker's self-signed
    certificate; A and B are two addresses of the broker's TLS listener (forwarders in this test).
    oslo.messaging shuffles the hosts of a URL for each connection, so which one a connection
    takes is random: the host carrying connections is killed (listener and connections), and
    they fail over to the other. Before and after, FIPs of compute2 are served (ACTIVE, ping,
    then DOWN once disassociated), and RabbitMQ lists the agent's connection on its TLS port as
    TLS (neutron-server itself uses the plain port). Then back to the lab's plain URL."""
    from dvrnet.lab.neutron import NeutronLab, restart_agents
    ctx = step
    lab = NeutronLab.load(ctx.info.state_dir)
    assert lab.rabbit_tls_url and lab.rabbit_tls_ca
    tls_port = lab.rabbit_ports[3]
    hosts = [Forwarder(tls_port), Forwarder(tls_port)]
    url = f"rabbit://guest:guest@127.0.0.1:{hosts[0].port},guest:guest@127.0.0.1:{hosts[1].port}/"
    try:
        restart_agents(ctx.info, lab, nodes=("compute2",), transport_url=url,
                       rabbit_conf=f"ssl = True\nssl_ca_file = {lab.rabbit_tls_ca}\n")
        f = ctx.fip("vm2", "green")
        wait_status(ctx, f["id"], "ACTIVE")
        ctx.converge()
        t = ping(ctx.info.internet_netns, f["floating_ip_address"], count=3, wait=2)
        assert t.received == 3, t
        conns = rabbit_connections(ctx.info.state_dir, lab)
        assert any(c["port"] == tls_port and c["ssl"] for c in conns), conns
        assert not any(c["port"] == tls_port and not c["ssl"] for c in conns), conns
        dead, alive = sorted(hosts, key=lambda h: h.open, reverse=True)
        assert dead.open > 0, "no connection through either host"
        before = alive.accepted
        dead.kill()
        steps.ok(ctx.c.put(f"/v2.0/floatingips/{f['id']}", json={"floatingip": {"port_id": None}}))
        wait_status(ctx, f["id"], "DOWN")        # the notification and the status report: after the failover
        ctx.converge()
        assert ping(ctx.info.internet_netns, f["floating_ip_address"], count=1, wait=1).received == 0
        assert dead.open == 0 and alive.accepted > before, (dead.open, alive.accepted, before)
        steps.ok(ctx.c.delete(f"/v2.0/floatingips/{f['id']}"))
        ctx.converge()
    finally:
        restart_agents(ctx.info, lab, nodes=("compute2",), transport_url=lab.transport_url)
        for h in hosts:
            h.kill()


def rabbit_connections(state_dir: str, lab) -> list[dict]:
    """`rabbitmqctl list_connections port ssl` of the lab's broker."""
    import json

    from dvrnet.lab.daemons import RABBIT_BIN
    base = os.path.join(state_dir, "rabbit")
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": base, "LC_ALL": "C.UTF-8",
           "ERL_EPMD_PORT": str(lab.rabbit_ports[2])}
    r = subprocess.run([os.path.join(RABBIT_BIN, "rabbitmqctl"), "-n", lab.rabbit_node, "list_connections",
                        "port", "ssl", "--formatter", "json"], env=env, capture_output=True, text=True,
                       timeout=60, check=False)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)

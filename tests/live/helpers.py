"""Helpers of the live-change scenarios: the API, convergence by polling the kernel, agents."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import httpx

from dvrnet.agent.feed import Feed
from dvrnet.agent.loop import desired_state
from dvrnet.kernel import Reconciler
from dvrnet.lab.info import LabInfo
from dvrnet.lab.steps import switch_of
from dvrnet.lab.traffic import FlowResult
from dvrnet.lab.up import _agent_args, _dvrnet, _spawn, world_spec_for
from dvrnet.plan import PlanConfig
from dvrnet.plan.render import render
from dvrnet.reconcile import diff
from dvrnet.scenarios.seed import SEED
from waiting import wait_for

HOSTS = ("compute1", "compute2", "network1")


def api(info: LabInfo) -> httpx.Client:
    return httpx.Client(base_url=info.server_url, timeout=30)


def ok(r: httpx.Response) -> dict:
    assert r.status_code in (200, 201, 204), f"{r.request.method} {r.request.url.path}: {r.status_code} {r.text[:400]}"
    return r.json() if r.content else {}


def one(r: httpx.Response) -> dict:
    return next(iter(ok(r).values()))


def spec(info: LabInfo):
    return world_spec_for(SEED, info.prefix, info.state_dir, info.port_kind)


def cfg(info: LabInfo, host: str, port_kind: str = "veth") -> PlanConfig:
    """The host's plan configuration with PORT_KIND ("lab": the lab's own kind)."""
    if port_kind == "lab":
        port_kind = info.port_kind
    n = info.node(host)
    kw = {"netns_prefix": n.prefix, "bridge_netns": n.bridge_netns, "external_bridge": "br-ex", "dvr_mac": n.node_mac,
          "metadata": n.metadata()}
    if port_kind != "veth":
        kw["port_kind"] = port_kind
    return PlanConfig(**kw)


def host_diff(info: LabInfo, host: str, port_kind: str = "veth"):
    """(plan, desired, observed) of HOST now: the server's view against the kernel."""
    view = Feed(info.server_url, host, "dvr", max_backoff=0).fetch_once()
    c = cfg(info, host, port_kind)
    desired, observed = desired_state(view.cloud, host, c, Reconciler(prefix=c.netns_prefix, register_proto=False,
                                                                       switch=switch_of(info.node(host))))
    return diff(desired, observed, c.netns_prefix), desired, observed


def actual(info: LabInfo, host: str, port_kind: str = "veth") -> str:
    return render(host_diff(info, host, port_kind)[2])


def wait_converged(info: LabInfo, hosts=HOSTS, timeout: float = 15.0, port_kind: str = "veth") -> float:
    """Poll until the kernel of every host matches the server's model; returns seconds waited."""
    t0 = time.monotonic()
    for h in hosts:
        wait_for(lambda h=h: not host_diff(info, h, port_kind)[0], timeout, f"{h} to converge")
    return time.monotonic() - t0


def netns(info: LabInfo, host: str | None = None) -> list[str]:
    names = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False).stdout.split()
    pre = info.node(host).prefix if host else info.prefix
    return sorted(n for n in names if n.startswith(pre) and "(" not in n)


def fip_ns(info: LabInfo, host: str, ext_net_id: str) -> str:
    return f"{info.node(host).prefix}fip-{ext_net_id}"


def ipj(ns: str, *args: str) -> list[dict]:
    p = subprocess.run(["ip", "-j", "-n", ns, *args], capture_output=True, text=True, check=False)
    assert p.returncode == 0, f"ip -n {ns} {' '.join(args)}: {p.stderr}"
    return json.loads(p.stdout or "[]")


def rules(ns: str) -> list[dict]:
    return [r for r in ipj(ns, "rule", "show") if str(r.get("protocol")) in ("94", "dvrnet")]


def routes(ns: str, table: str | int = "all") -> list[dict]:
    return ipj(ns, "route", "show", "table", str(table))


def ext_net(c: httpx.Client) -> dict:
    return next(n for n in ok(c.get("/v2.0/networks"))["networks"] if n.get("router:external"))


def subnet_by_name(c: httpx.Client, name: str) -> dict:
    return next(s for s in ok(c.get("/v2.0/subnets"))["subnets"] if s["name"] == name)


def fip_of(c: httpx.Client, address: str) -> dict:
    return next(f for f in ok(c.get("/v2.0/floatingips"))["floatingips"] if f["floating_ip_address"] == address)


# --- agents ----------------------------------------------------------------------------------
def agent_pid(info: LabInfo, host: str) -> int | None:
    pf = os.path.join(info.state_dir, "pids", f"agent-{host}.pid")
    try:
        return int(open(pf).read().strip())
    except (OSError, ValueError):
        return None


def kill_agent(info: LabInfo, host: str, sig: int = signal.SIGKILL) -> int:
    pid = agent_pid(info, host)
    assert pid, f"no agent pid for {host}"
    os.kill(pid, sig)
    wait_for(lambda: not os.path.exists(f"/proc/{pid}") or _zombie(pid), 5, f"agent {pid} to die")
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
    return pid


def gone(pid: int) -> bool:
    """PID has exited (reaped here if it was our child)."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
    return not os.path.exists(f"/proc/{pid}") or _zombie(pid)


def _zombie(pid: int) -> bool:
    try:
        return open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return True


def agent_argv(info: LabInfo, host: str, *extra: str) -> list[str]:
    s = spec(info)
    return _dvrnet(*_agent_args(s, s.node_by_name(host), info.server_url), "--log-level", "INFO", *extra)


def start_agent(info: LabInfo, host: str, *extra: str) -> tuple[subprocess.Popen, str]:
    """A long-running agent for HOST (INFO log: one line per pass with its op count); its pid file
    replaces the old one, so `lab down` stops it. Returns (process, log path)."""
    s = spec(info)
    name = f"agent-{host}"
    log = os.path.join(info.state_dir, f"{name}.log")
    offset = os.path.getsize(log) if os.path.exists(log) else 0
    p = _spawn(s, name, agent_argv(info, host, *extra))
    return p, f"{log}@{offset}"


def log_since(mark: str) -> str:
    path, off = mark.rsplit("@", 1)
    with open(path, errors="replace") as f:
        f.seek(int(off))
        return f.read()


def agent_once(info: LabInfo, host: str, *extra: str, timeout: float = 60) -> tuple[int, str]:
    p = subprocess.run(agent_argv(info, host, "--once", *extra), capture_output=True, text=True, timeout=timeout, check=False)
    return p.returncode, p.stderr


def assert_zero(results: dict[str, FlowResult], names=None) -> None:
    bad = [r.line() for n, r in results.items() if (names is None or n in names) and (r.lost or r.error)]
    assert not bad, "traffic the change does not concern lost packets:\n" + "\n".join(bad)


PLUGGED = ("fg-", "qg-", "qr-", "sg-")      # the router ports a port kind applies to


def kinds(info, host: str) -> dict[str, str]:
    """Every router port of HOST's fip-/qrouter-/snat- namespaces: its link kind (veth, macvlan, tun...)."""
    out = {}
    for ns in netns(info, host):
        if not any(k in ns for k in ("-fip-", "-qrouter-", "-snat-")):
            continue
        links = json.loads(subprocess.run(["ip", "-d", "-j", "-n", ns, "link", "show"], capture_output=True,
                                          text=True, check=False).stdout or "[]")
        for lk in links:
            if lk["ifname"].startswith(PLUGGED):
                out[f"{ns}/{lk['ifname']}"] = lk.get("linkinfo", {}).get("info_kind", "")
    return out

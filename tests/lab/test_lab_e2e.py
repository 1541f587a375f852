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
def kernel_log():
    """The kernel log from before `lab up` on (or why it cannot be read: the test using it fails)."""
    from dvrnet.lab.kmsg import KernelLog, KernelLogUnreadable
    try:
        log = KernelLog()
    except KernelLogUnreadable as e:
        yield e
        return
    with log:
        yield log


@pytest.fixture(scope="module")
def lab(tmp_path_factory, kernel_log):
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


def _run_devices(prefix: str) -> set[str]:
    """Every link in the run's namespaces (names carry port and network ids: unique to the run)."""
    out = set()
    for ns in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False).stdout.split():
        if ns.startswith(prefix):
            links = json.loads(subprocess.run(["ip", "-j", "-n", ns, "link"], capture_output=True, text=True,
                                              check=False).stdout or "[]")
            out |= {lk["ifname"] for lk in links if lk.get("ifname") != "lo"}
    return out


def test_kernel_log_stays_clean(lab, kernel_log):
    """Issue 17 item 4: through `lab up` and `lab check`, the kernel logs no frame from a MAC shared
    between nodes (a bridge seeing its own address from VXLAN, IPv6 DAD of a shared link-local) for
    this run's devices; and it fails, not passes, when the log cannot be read."""
    import sys

    from dvrnet.lab.kmsg import KernelLog, l2_complaints
    info, _ = lab
    if not isinstance(kernel_log, KernelLog):
        pytest.fail(f"the kernel log cannot be read, so L2 hygiene cannot be checked: {kernel_log}")
    p = subprocess.run([sys.executable, "-m", "dvrnet.cli", "lab", "check", "--prefix", info.prefix,
                        "--state-dir", info.state_dir, "--json"], capture_output=True, text=True, timeout=120,
                       check=False)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    time.sleep(1.5)                      # DAD of an address made at the end would report within ~1 s
    devices = _run_devices(info.prefix)
    assert any(d.startswith("qr-") for d in devices) and any(d.startswith("vx-") for d in devices)
    found = l2_complaints(kernel_log.new(), devices)
    assert not found, "\n".join(c.text for c in found)
    # and the reasons: no IPv6 on any router port, the rewrite really ran (frames left by VXLAN with a
    # qr- MAC got the node's MAC), and no node's bridge learned a qr- MAC on its VXLAN port
    qr_macs = set()
    for ns in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False).stdout.split():
        if ns.startswith(info.prefix) and ("-qrouter-" in ns or "-fip-" in ns or "-snat-" in ns):
            v6 = subprocess.run(["ip", "-6", "-n", ns, "-o", "addr"], capture_output=True, text=True, check=False)
            assert v6.stdout.strip() == "", (ns, v6.stdout)
            for lk in json.loads(subprocess.run(["ip", "-j", "-n", ns, "link"], capture_output=True, text=True,
                                                check=False).stdout):
                if lk["ifname"].startswith("qr-"):
                    qr_macs.add(lk["address"])
    assert qr_macs
    rewritten = 0
    for n in info.nodes:
        fdb = json.loads(subprocess.run(["bridge", "-n", n.bridge_netns, "-j", "fdb", "show"], capture_output=True,
                                        text=True, check=False).stdout or "[]")
        leaked = [e for e in fdb if e.get("mac") in qr_macs and e.get("ifname", "").startswith("vx-")]
        assert not leaked, (n.name, leaked)
        nft = subprocess.run(["ip", "netns", "exec", n.bridge_netns, "nft", "-j", "list", "chain", "bridge", "dvrnet",
                              "post"], capture_output=True, text=True, check=False)
        if nft.returncode != 0:          # a node without qr- ports (network1) has no guard
            assert not [d for d in _run_devices(n.prefix) if d.startswith("qr-")], (n.name, nft.stderr)
            continue
        for item in json.loads(nft.stdout)["nftables"]:
            r = item.get("rule")
            if r and any("mangle" in e for e in r["expr"]):
                rewritten += next(e["counter"]["packets"] for e in r["expr"] if "counter" in e)
    assert rewritten > 0, "no routed frame left a node by VXLAN: the rewrite was not exercised"


def test_agents_log_each_pass_at_info_in_the_state_dir(lab):
    import os
    import re
    info, _ = lab
    for n in info.nodes:
        with open(os.path.join(info.state_dir, f"agent-{n.name}.log"), errors="replace") as f:
            text = f.read()
        assert re.search(r"dvrnet.agent INFO revision \d+: \d+ ops in \d+ ms, converged", text), (n.name, text[-2000:])


def test_a_broken_subnet_table_is_reported(lab):
    """A planted fault (green's default replaced by red's in every fip- namespace) is what the
    checks report. The agents would repair it within moments (that is their job), so they are
    stopped (SIGSTOP) while it is planted and checked, and resumed after."""
    import os
    import signal

    from dvrnet.lab import steps
    info, _ = lab
    green = next(g for g in info.gateways if g.name == "green")
    red = next(g for g in info.gateways if g.name == "red")
    pids = [n.agent_pid for n in info.nodes if n.agent_pid]
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        _broken_table_is_reported(info, green, red)
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGCONT)
    steps.wait_converged(info, timeout=60)


def _broken_table_is_reported(info, green, red):
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

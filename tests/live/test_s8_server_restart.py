"""Scenario 8 of issue 6: the server is stopped under traffic and started again. Agents keep the
data plane exactly as it is (0 lost), retry with a growing backoff while it is away, and catch up
with a change made right after the restart (a FIP for vm3)."""
from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path

import pytest

from dvrnet.kernel import Reconciler
from dvrnet.lab.traffic import Flow, Traffic, unconcerned_flows
from dvrnet.lab.up import start_server
from dvrnet.plan.render import render

from .conftest import record
from .helpers import (
    HOSTS,
    api,
    assert_zero,
    cfg,
    ext_net,
    gone,
    host_diff,
    one,
    spec,
    subnet_by_name,
    wait_converged,
    wait_for,
)

pytestmark = pytest.mark.root


def test_s8_server_stop_and_restart(live_lab):
    info = live_lab
    before = {h: host_diff(info, h) for h in HOSTS}      # (plan, desired, observed)
    assert not any(b[0] for b in before.values())
    logs = {h: os.path.join(info.state_dir, f"agent-{h}.log") for h in HOSTS}
    marks = {h: os.path.getsize(p) if os.path.exists(p) else 0 for h, p in logs.items()}
    pid = int(Path(info.state_dir, "pids", "server.pid").read_text())
    port = int(info.server_url.rsplit(":", 1)[1])
    with Traffic(unconcerned_flows(info), info.state_dir) as tr:
        time.sleep(0.3)
        os.kill(pid, signal.SIGTERM)
        wait_for(lambda: gone(pid), 10, "the server to stop")
        time.sleep(4.0)
        for h, (_plan, desired, observed) in before.items():    # the kernel, read while the server is away
            now = Reconciler(prefix=cfg(info, h).netns_prefix).observe(desired)
            assert render(now) == render(observed), f"{h}: the data plane changed while the server was away"
        for h in HOSTS:
            assert not gone(info.node(h).agent_pid), f"agent of {h} died without its server"
        t_restart = time.monotonic()
        assert start_server(spec(info), port) == info.server_url
        c = api(info)
        ext = ext_net(c)
        vm3 = info.vm("vm3")
        fip = one(c.post("/v2.0/floatingips", json={"floatingip": {
            "floating_network_id": ext["id"], "subnet_id": subnet_by_name(c, "red")["id"], "port_id": vm3.port_id}}))
        wait_converged(info, timeout=40)
        caught_up = time.monotonic() - t_restart
        time.sleep(0.3)
        results = tr.stop()
    record("8 server stopped/restarted", f"4 s down, caught up in {caught_up:.1f}s", results)
    assert_zero(results)
    # backoff: the waits announced by each agent grow while the server is away
    for h in HOSTS:
        text = Path(logs[h]).read_text(errors="replace")[marks[h]:]
        waits = [float(x) for x in re.findall(r"retrying in ([0-9.]+) s", text)]
        assert len(waits) >= 2 and max(waits) > min(waits) * 1.5, f"{h}: no growing backoff in its log: {waits}"
    # the change made after the restart works end to end
    with Traffic([Flow("inet→vm3 (new FIP)", "icmp", info.internet_netns, fip["floating_ip_address"])],
                 info.state_dir) as tr:
        time.sleep(0.5)
        r2 = tr.stop()
    record("8 server stopped/restarted", "FIP added after restart", r2)
    assert_zero(r2)
    print(f"caught up {caught_up:.2f}s after the restart")

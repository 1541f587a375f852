"""The lab's agents as processes (root): an agent restarted by hand — no pid file, not started by
the lab — is the PID `lab info` reports for its node, and `lab down` stops it."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys

import pytest

from dvrnet.lab.info import GatewayInfo, LabInfo, NodeInfo
from dvrnet.lab.world import MARKER

from .conftest import unique_prefix

pytestmark = pytest.mark.root


def dvrnet(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dvrnet.cli", *args], capture_output=True, text=True, timeout=60,
                          check=False)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_restarted_agent_is_tracked_by_lab_info_and_stopped_by_lab_down(tmp_path):
    prefix = unique_prefix()
    state = str(tmp_path / "state")
    old = subprocess.Popen(["sleep", "0"])
    old.wait()                                       # a PID that no longer runs: the agent before the restart
    node = NodeInfo("compute1", "c1", "dvr", f"{prefix}c1-", f"{prefix}c1-node", "10.99.0.1", "fa:16:3f:00:00:01",
                    agent_pid=old.pid)
    info = LabInfo(prefix=prefix, state_dir=state, segment_netns=f"{prefix}ext", internet_netns=f"{prefix}inet",
                   internet_address="192.0.2.10", tcp_port=7, probe_netns=f"{prefix}probe", probe_addresses={},
                   sink_netns=f"{prefix}sink", sink_addresses={}, service_subnet="100.64.0.0/24", nodes=[node],
                   gateways=[GatewayInfo("red", "203.0.113.0/24", "203.0.113.1", f"{prefix}gw-red")],
                   server_url=f"http://127.0.0.1:{_closed_port()}")
    info.save()
    with open(os.path.join(state, MARKER), "w") as f:
        f.write(prefix)
    # started by hand, the way the lab starts it (its server is away: it keeps retrying)
    agent = subprocess.Popen([sys.executable, "-m", "dvrnet.cli", "agent", "--host", "compute1", "--mode", "dvr",
                              "--server", info.server_url, "--netns-prefix", node.prefix,
                              "--bridge-netns", node.bridge_netns], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        shown = dvrnet("lab", "info", "--json", "--state-dir", state)
        assert shown.returncode == 0, shown.stderr
        assert json.loads(shown.stdout)["nodes"][0]["agent_pid"] == agent.pid
        text = dvrnet("lab", "info", "--state-dir", state).stdout
        assert f"agent pid {agent.pid}" in text, text
        down = dvrnet("lab", "down", "--prefix", prefix, "--state-dir", state)
        assert down.returncode == 0, down.stderr
        try:
            agent.wait(10)
        except subprocess.TimeoutExpired:
            pytest.fail(f"lab down left the restarted agent {agent.pid} running")
        assert not os.path.exists(state)
    finally:
        if agent.poll() is None:
            os.killpg(agent.pid, signal.SIGKILL)
            agent.wait()

"""Operator mistakes on the command line: one line on stderr naming the option and the reason,
non-zero exit, no traceback."""
from __future__ import annotations

import subprocess
import sys

import pytest


def dvrnet(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dvrnet.cli", *args], capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.parametrize("args, words", [
    (("plan", "--scenario", "nope", "--host", "compute1"), ("--scenario", "nope")),
    (("plan", "--host", "nope"), ("--host", "nope")),
    (("plan",), ("--host",)),
    (("server", "--bind", "nonsense"), ("--bind", "HOST:PORT")),
    (("server", "--auth", "token"), ("--tokens",)),
    (("show", "compute1", "--server", "http://127.0.0.1:1"), ("compute1", "127.0.0.1:1")),
    (("agent", "--host", "h", "--mode", "bogus", "--server", "http://x"), ("--mode", "bogus")),
])
def test_bad_input_is_one_line(args, words):
    p = dvrnet(*args)
    assert p.returncode != 0
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("dvrnet: "), p.stderr
    for w in words:
        assert w in lines[0], (w, lines[0])
    assert "Traceback" not in p.stderr


@pytest.mark.parametrize("args, words", [
    (("server", "--db", "nonsense://x"), ("--db", "nonsense")),
    (("lab", "down", "--prefix", "Not A Prefix"), ("--prefix", "Not A Prefix")),
    (("lab", "info", "--state-dir", "/nonexistent/dvrnet-lab"), ("no lab", "/nonexistent/dvrnet-lab")),
    (("lab", "check", "--state-dir", "/nonexistent/dvrnet-lab"), ("no lab", "/nonexistent/dvrnet-lab")),
])
def test_more_operator_errors_are_one_line(args, words):
    test_bad_input_is_one_line(args, words)


class _Bug(Exception):
    pass


def _run_cli(monkeypatch, capsys, *args: str) -> tuple[int, str]:
    from dvrnet import cli
    monkeypatch.setattr(sys, "argv", ["dvrnet", *args])
    with pytest.raises(SystemExit) as e:
        cli.run()
    return e.value.code, capsys.readouterr().err


@pytest.mark.parametrize("bug", ["PlanConflict", "NotOwned", "KeyError"])
def test_a_bug_shows_its_traceback_and_says_it_is_a_bug(monkeypatch, capsys, bug):
    """The planner's PlanConflict, the reconciler's NotOwned (both ValueErrors) and any other
    unexpected exception are bugs, not operator errors: traceback, then one line saying so."""
    import dvrnet.plan
    from dvrnet.plan.builder import PlanConflict
    from dvrnet.reconcile import NotOwned
    exc = {"PlanConflict": PlanConflict("two routes for 203.0.113.5/32 in table 254"),
           "NotOwned": NotOwned("eth0 is not dvrnet's"), "KeyError": KeyError("r1")}[bug]

    def broken(*_a, **_kw):
        raise exc
    monkeypatch.setattr(dvrnet.plan, "plan_host", broken)
    code, err = _run_cli(monkeypatch, capsys, "plan", "--host", "compute1")
    assert code == 70, err
    assert err.startswith("Traceback (most recent call last):"), err
    last = err.strip().splitlines()[-1]
    assert last.startswith("dvrnet: internal error, a bug in dvrnet") and type(exc).__name__ in last, last


def _lab_state(tmp_path, prefix: str = "dvhq-") -> str:
    from dvrnet.lab.info import GatewayInfo, LabInfo, NodeInfo, RouterInfo, VmInfo
    info = LabInfo(prefix=prefix, state_dir=str(tmp_path), segment_netns=f"{prefix}ext", internet_netns=f"{prefix}inet",
                   internet_address="192.0.2.10", tcp_port=7, probe_netns=f"{prefix}probe",
                   probe_addresses={"203.0.113.0/24": "203.0.113.250"}, sink_netns=f"{prefix}sink",
                   sink_addresses={"203.0.113.0/24": "203.0.113.251"}, service_subnet="100.64.0.0/24",
                   nodes=[NodeInfo("compute1", "c1", "dvr", f"{prefix}c1-", f"{prefix}c1-node", "10.99.0.1",
                                   "fa:16:3f:00:00:01", agent_pid=None)],
                   gateways=[GatewayInfo("red", "203.0.113.0/24", "203.0.113.1", f"{prefix}gw-red")],
                   vms=[VmInfo("vm1", "compute1", f"{prefix}vm1", "net1", "n1", "p1", "fa:16:3e:ab:e5:9c", "10.0.1.11",
                               24, "10.0.1.1", fip="203.0.113.10", fip_subnet="red", router="router1")],
                   routers=[RouterInfo("router1", "r1", "network1", ["203.0.113.2"], ["net1"])],
                   server_url="http://127.0.0.1:9")
    info.save()
    return str(tmp_path)


def test_lab_info_has_a_text_form_and_json_on_request(tmp_path):
    import json
    state = _lab_state(tmp_path)
    text = dvrnet("lab", "info", "--state-dir", state)
    assert text.returncode == 0, text.stderr
    for words in ("lab dvhq-", "http://127.0.0.1:9", "compute1", "prefix dvhq-c1-", "agent not running",
                  "vm1", "10.0.1.11/24 on net1", "FIP 203.0.113.10 (red)", "red", "203.0.113.0/24"):
        assert words in text.stdout, (words, text.stdout)
    for flag in ("--json",):
        js = dvrnet("lab", "info", "--state-dir", state, flag)
        assert js.returncode == 0 and json.loads(js.stdout)["prefix"] == "dvhq-", js.stderr
    assert dvrnet("lab", "info", "--state-dir", state, "--text").stdout == text.stdout


@pytest.mark.parametrize("command", ["info", "check"])
def test_lab_prefix_is_honoured(tmp_path, command):
    state = _lab_state(tmp_path)
    p = dvrnet("lab", command, "--state-dir", state, "--prefix", "dvhother-")
    assert p.returncode == 1, (p.stdout, p.stderr)
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "dvhq-" in lines[0] and "dvhother-" in lines[0], p.stderr
    assert not p.stdout
    if command == "info":
        assert dvrnet("lab", "info", "--state-dir", state, "--prefix", "dvhq-").returncode == 0

"""Which lab node a running agent serves, from its command line (lab/agents.py): `dvrnet agent`
by --netns-prefix, `dvrnet neutron-agent` by the `[dvrnet] netns_prefix` of its config files."""
from __future__ import annotations

from dvrnet.lab.agents import agent_of


def test_dvrnet_agent_by_its_option():
    assert agent_of(["/v/bin/python", "-m", "dvrnet.cli", "agent", "--host", "c1", "--netns-prefix", "p-c1-"]) == "p-c1-"
    assert agent_of(["/v/bin/dvrnet", "agent", "--netns-prefix=p-c2-"]) == "p-c2-"
    assert agent_of(["/v/bin/dvrnet", "agent", "--once", "--netns-prefix", "p-c1-"]) is None
    assert agent_of(["/usr/bin/python3", "agent.py", "--netns-prefix", "p-c1-"]) is None


def test_neutron_agent_by_its_config_files_the_last_one_wins(tmp_path):
    neutron = tmp_path / "neutron.conf"
    neutron.write_text("[DEFAULT]\ntransport_url = rabbit://guest:guest@127.0.0.1:5672/\n")
    first = tmp_path / "a.ini"
    first.write_text("[dvrnet]\nnetns_prefix = p-old-\n")
    last = tmp_path / "l3_agent.ini"
    last.write_text("[DEFAULT]\nagent_mode = dvr\n[dvrnet]\nnetns_prefix = p-c1-\n")
    argv = ["/v/bin/python", "-m", "dvrnet.cli", "neutron-agent", "--config-file", str(neutron),
            f"--config-file={first}", "--config-file", str(last), "--ready-file", "/tmp/r"]
    assert agent_of(argv) == "p-c1-"
    assert agent_of(argv[:6]) is None                       # neutron.conf alone sets no prefix
    assert agent_of(argv[:4] + ["--config-file", str(tmp_path / "missing.ini")]) is None

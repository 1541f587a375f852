"""The lab on Open vSwitch (`lab up --port-kind ovs|ovs-veth`; docs/port-kinds.md): what an ML2/OVS
node has around `br-int`, built beside the lab's Linux-bridge L2.

Per node, in its bridge namespace `<P>node`:
- one ovsdb-server and one ovs-vswitchd (userspace datapath; `lab/ovs.py`), their database,
  sockets, logs and pid files in `<state dir>/ovs-<short>/`, and the bridge `br-int`;
- per network a local VLAN on br-int — the external network `EXT_VLAN`, tenant network i its
  VXLAN id (1001, 1002, …) — and an uplink veth for it: `int-…` an access port of br-int in
  that VLAN, `phy-…` enslaved to the lab's Linux bridge of the network (`br-ex`, `brq…`), whose
  VXLAN ports and nftables rules carry it to the other nodes as before (names after Neutron's
  int-br-ex/phy-br-ex patch pair). `phy-…` transmits with checksum offload off: the userspace
  datapath reads `int-…` with a packet socket and forwards what it reads as it is;
- the stand-in L2 agent (`lab/l2agent.py`), which moves each port dvrnet plugs from Neutron's
  dead VLAN into its network's VLAN;
- the distributed gateway's L2 guard on the Linux bridges' VXLAN ports (plan/l2.py's rules, in
  the lab's own table `bridge dvlab`): with an OVS port kind the agent plans none — in ML2/OVS the
  L2 agent keeps the gateway's MAC and ARP on the node (its tunnel bridge's DVR flows) — so the
  lab does, as that agent would.
VMs stay on the Linux bridges (as with Neutron's hybrid plugging, one bridge per network here
instead of one per VM); router ports go through br-int. Everything is stopped by pid by
`lab down` (pid files, and every process in the lab's namespaces).
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

from ..plan.l2 import uplink_guard
from ..reconcile.nft_text import table_script
from . import ovs as labovs
from .sh import LabError, ip_batch, netns_exec, nft, parallel, run

EXT_VLAN = 100
GUARD_TABLE = "dvlab"            # not dvrnet's own name: the agent would remove a `bridge dvrnet` it did not plan
INTEGRATION_BRIDGE = "br-int"
OVS_KINDS = ("ovs", "ovs-veth")


def instance(state_dir: str, bridge_ns: str, short: str) -> labovs.Instance:
    return labovs.Instance(bridge_ns, os.path.join(state_dir, f"ovs-{short}"))


def uplink_names(network_id: str | None) -> tuple[str, str]:
    """(br-int side, Linux bridge side) of a network's uplink; None: the external network."""
    if network_id is None:
        return "int-br-ex", "phy-br-ex"
    return ("int-" + network_id)[:14], ("phy-" + network_id)[:14]


def start_switches(insts: Sequence[labovs.Instance]) -> None:
    with ThreadPoolExecutor(max_workers=max(1, len(insts))) as ex:
        for f in [ex.submit(labovs.start, i.netns, i.dir, (INTEGRATION_BRIDGE,)) for i in insts]:
            f.result()


def add_uplinks(insts: Sequence[labovs.Instance], nets: Sequence[tuple[str | None, str, int, int]]) -> None:
    """NETS: (network id or None for the external one, Linux bridge, VLAN, MTU). Idempotent."""
    cmds, tx = [], []
    for inst in insts:
        lines = []
        offload = []
        for net, bridge, _vlan, mtu in nets:
            a, b = uplink_names(net)
            lines += [f"link add {a} mtu {mtu} type veth peer name {b} mtu {mtu}", f"link set {b} master {bridge} up",
                      f"link set {a} up"]
            offload.append(f"ethtool -K {b} tx off >/dev/null")
        cmds.append(ip_batch(inst.netns, lines, force=True))
        tx.append(netns_exec(inst.netns, "sh", "-c", " && ".join(offload), check=True))
    for cmd, p in zip(cmds, parallel(cmds)):
        bad = [ln for ln in p.stderr.splitlines()
               if ln.strip() and "File exists" not in ln and not ln.startswith("Command failed")]
        if bad:
            raise LabError(f"[{cmd.ns}] uplinks: {'; '.join(bad)}")
    parallel(tx)
    for inst in insts:
        args: list[str] = []
        for net, _bridge, vlan, _mtu in nets:
            a, _b = uplink_names(net)
            args += ["--", "--may-exist", "add-port", INTEGRATION_BRIDGE, a, f"tag={vlan}"]
        inst.vsctl(*args)


def load_guard(spec, gateway_ips, router_macs) -> None:
    """The L2 guard on every node (replaced whole: call again when gateways or MACs change)."""
    cmds = []
    for n in spec.nodes:
        t = uplink_guard(sorted(set(gateway_ips)), sorted({m.lower() for m in router_macs}), spec.node_mac(n))
        text = (table_script(replace(t, name=GUARD_TABLE)) if t is not None
                else f"add table bridge {GUARD_TABLE}\ndelete table bridge {GUARD_TABLE}\n")
        cmds.append(nft(spec.bridge_ns(n), text))
    parallel(cmds)


def l2agent_argv(python: str, inst: labovs.Instance, server: str, tags: dict[str, int], prefix: str) -> list[str]:
    argv = [python, "-m", "dvrnet.lab.l2agent", "--db", inst.db, "--server", server, "--lab", prefix]
    for net, vlan in sorted(tags.items()):
        argv += ["--tag", f"{net}={vlan}"]
    return argv


def stop_switches(insts: Sequence[labovs.Instance]) -> list[int]:
    out: list[int] = []
    for inst in insts:
        out += labovs.stop(inst)
    return out


def bridge_ports(inst: labovs.Instance) -> list[str]:
    p = run(netns_exec(inst.netns, "ovs-vsctl", f"--db={inst.db}", "list-ports", INTEGRATION_BRIDGE))
    return p.stdout.split()

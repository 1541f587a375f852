"""Execute a Plan against the kernel; never stop at the first error.

Invariants:
- Stages run in order (0 namespaces, 1 links, 2 per-namespace state, 3 teardown); inside a stage
  the plan's order is kept per namespace. Stage 2 runs namespaces concurrently (their ops are
  independent once links exist).
- Replacement groups (`Plan.groups`: one replaced link's delete, create, sets, addresses,
  routes, neighbours, sysctls) run strictly in plan order, one group after the other, between
  the ops before them (staged as above: the creates) and the ops after them (staged: deletes,
  teardown) — one port is down at a time, for a few `ip -batch` runs.
- Consecutive `ip` ops of one namespace go through one `ip -force -batch`; each nft op is one
  `nft -f` transaction; sysctls are written from a thread inside the namespace; gratuitous ARPs
  go out from a raw socket; processes are started, reloaded and stopped by `process.py`.
- "Already there" on an add and "already gone" on a delete are success, so every op is
  idempotent and a killed apply is repaired by the next pass.
- Every failure is an `OpError` naming the op (namespace and object) and a reason.
- An nft element change of a `fixed2fip` map (a FIP added to or removed from a qrouter-) also
  deletes the conntrack entries of those fixed IPs (`conntrack.py`), so flows already running
  are NATed by the new rules — only when its transaction committed (a failed one changed no NAT). The namespace's conntrack table is looked at first through
  /proc/thread-self/net/nf_conntrack (a thread inside the namespace, < 1 ms); when it names none
  of those IPs as a source there is nothing to delete and the netlink dump (pyroute2, ~15 ms
  even on an empty table) is skipped. No procfs file: the dump, as before.
- Gratuitous ARP: an AF_PACKET socket of protocol 0 (not hooked into the receive path), frames
  sent with `sendto(dev, ETH_P_ARP)`. A socket bound to ETH_P_ARP costs an RCU grace period
  (`synchronize_net`) on bind and another on close — 10-50 ms on a loaded 2-CPU host, for a
  frame that takes 0.1 ms; the close (which still waits for one) is handed to a background
  thread, after the frames are out.
- Open vSwitch ops (`tool = "ovs"`) go to `ovs.run` with the switch given to `execute`: stage 1
  starts with the internal-port plugs (one transaction for all of them: nothing they need is
  created in stage 1), then the rest of stage 1 in plan order; ethtool settings are set from a
  thread inside the namespace, like sysctls.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextvars import ContextVar
from dataclasses import dataclass
from itertools import groupby

from dvrnet.reconcile.ops import (
    AddrDel,
    LinkAdd,
    LinkDel,
    NeighDel,
    NetnsAdd,
    NetnsDel,
    NftElements,
    Op,
    OvsPlug,
    OvsPortDel,
    Plan,
    RouteDel,
    RuleAdd,
    RuleDel,
)

from . import conntrack, ethtool, garp, iproute, netns, nft, ovs, process, sysctl, takeover

NAT_SOURCE_MAP = "fixed2fip"      # plan/qrouter.py: fixed IP -> FIP

# "No such device": a device that vanished between ip's name lookup and the request (an OVS
# internal port's tap, which ovs-vswitchd destroys when its port is deleted)
_GONE = re.compile(r"Cannot find device|No such device|No such process|No such file or directory|"
                   r"Address not found|Cannot assign requested address|does not exist")
_EXISTS = re.compile(r"File exists")
_DELETES = (AddrDel, LinkDel, NeighDel, RouteDel, RuleDel)
_ADDS = (RuleAdd, LinkAdd)
# the switch and session of the execute() running in this thread (stage 1 and groups run there)
_OVS: ContextVar[tuple[ovs.Switch | None, ovs.Session] | None] = ContextVar("dvrnet_ovs", default=None)


@dataclass(frozen=True)
class OpError:
    op: Op
    reason: str

    def __str__(self) -> str:
        return f"{self.op}: {self.reason}"


def reason(msg: str) -> str:
    if "Operation not permitted" in msg:
        return f"EPERM: {msg}"
    if "Permission denied" in msg:
        return f"EACCES: {msg}"
    return msg


def _tolerated(op: Op, msg: str) -> bool:
    if isinstance(op, _DELETES):
        return bool(_GONE.search(msg))
    if isinstance(op, _ADDS):
        return bool(_EXISTS.search(msg))
    return False


def _run_ip(ns: str, ops: list[Op]) -> list[OpError]:
    errs = iproute.batch(ns, [op.line() for op in ops])
    return [OpError(ops[e.line], reason(e.message)) for e in errs
            if 0 <= e.line < len(ops) and not _tolerated(ops[e.line], e.message)]


# --- gratuitous ARP, conntrack --------------------------------------------------------------------
def _conntrack_names(ns: str, ips: list[str]) -> bool:
    """False only when the namespace's conntrack table (procfs) has no entry with one of `ips` as
    an original or reply source; True when it has, or cannot be read that way."""
    def body() -> str | None:
        try:
            with open("/proc/thread-self/net/nf_conntrack") as f:
                return f.read()
        except OSError:
            return None
    try:
        text = netns.run_in(ns, body)
    except (OSError, netns.MissingNamespace):
        return True
    return text is None or any(f"src={ip} " in text for ip in ips)


def _run_group(ns: str, tool: str, ops: list[Op]) -> list[OpError]:
    if tool == "ip":
        return _run_ip(ns, ops)
    if tool == "netns":
        out = []
        for op in ops:
            msg = netns.add(ns) if isinstance(op, NetnsAdd) else netns.delete(ns)
            if msg:
                out.append(OpError(op, reason(msg)))
        return out
    if tool == "nft":
        errs, done = [], []
        for op in ops:
            m = nft.apply_script(ns, op.script())
            if m:
                errs.append(OpError(op, reason(m)))
                nft.uncommitted(ns)
            else:
                done.append(op)
                if isinstance(op, NftElements):         # verified by the generation (nft.committed)
                    nft.committed(ns, op)
                else:
                    nft.uncommitted(ns)
        # only a committed transaction changed the NAT: a failed one leaves the flows as they are
        ips = sorted({k for op in done if isinstance(op, NftElements)
                      for name, k, _v in op.add + op.delete if name == NAT_SOURCE_MAP})
        if ips and _conntrack_names(ns, ips):
            conntrack.forget(ns, ips)
        return errs
    if tool == "sysctl":
        try:
            errs = sysctl.write(ns, [(op.key, op.value) for op in ops])      # type: ignore[attr-defined]  # tool "sysctl": SysctlSet ops
        except netns.MissingNamespace as e:
            return [OpError(op, str(e)) for op in ops]
        return [OpError(op, errs[op.key]) for op in ops if op.key in errs]  # type: ignore[attr-defined]  # SysctlSet ops
    if tool == "ovs":
        ctx = _OVS.get() or (None, ovs.Session())
        return [OpError(op, reason(m)) for op, m in ovs.run(ctx[0], ns, ops, ctx[1])]
    if tool == "ethtool":
        try:
            errs = ethtool.set_tx(ns, [(op.dev, op.tx) for op in ops])            # type: ignore[attr-defined]  # tool "ethtool": TxOffload ops
        except netns.MissingNamespace as e:
            return [OpError(op, str(e)) for op in ops]
        return [OpError(op, errs[op.dev]) for op in ops if op.dev in errs]  # type: ignore[attr-defined]  # TxOffload ops
    if tool == "garp":
        out = []
        for dev, dev_ops in groupby(ops, key=lambda o: o.dev):                # type: ignore[attr-defined]  # tool "garp": Garp ops
            dev_ops = list(dev_ops)
            try:
                garp.announce(ns, dev, [o.ip for o in dev_ops])                    # type: ignore[attr-defined]  # Garp ops
            except (OSError, netns.MissingNamespace) as e:
                out += [OpError(o, f"gratuitous ARP not sent: {e}") for o in dev_ops]
        return out
    if tool == "proc":
        return [OpError(op, reason(m)) for op in ops if (m := process.run(op))]
    if tool == "neutron":                    # removing neutron-l3-agent's objects (kernel/takeover.py)
        return [OpError(op, reason(m)) for op, m in takeover.run(ns, ops)]
    raise ValueError(tool)


Done = Callable[[int], None]          # told how many ops just ran (from any thread)


def _run_sequence(ops: list[Op], done: Done | None = None) -> list[OpError]:
    """Ops in plan order, grouped into runs of the same (namespace, tool)."""
    errors: list[OpError] = []
    for (ns, tool), run in groupby(ops, key=lambda o: (o.ns, o.tool)):
        group = list(run)
        errors += _run_group(ns, tool, group)
        if done is not None:
            done(len(group))
    return errors


def execute(plan: Plan, parallel: bool = True, done: Done | None = None,
            switch: ovs.Switch | None = None) -> list[OpError]:
    """The ops before the replacement groups by stage, then each group in order (one link's
    delete, create and everything on it: a few `ip -batch` runs, ms), then the rest by stage.
    DONE (progress): called with the number of ops of each run as it finishes. SWITCH: the Open
    vSwitch the plan's OVS ops are for."""
    errors: list[OpError] = []
    token = _OVS.set((switch, ovs.Session()))
    try:
        for ops, is_group in plan.segments():
            errors += _run_sequence(list(ops), done) if is_group else _execute_staged(ops, parallel, done)
    finally:
        _OVS.reset(token)
    return errors


def _execute_staged(ops, parallel: bool, done: Done | None = None) -> list[OpError]:
    errors: list[OpError] = []
    stages: dict[int, list[Op]] = {0: [], 1: [], 2: [], 3: []}
    for op in ops:
        stages[op.stage].append(op)
    errors += _run_sequence(stages[0], done)
    # stage 1: OVS internal ports first (one transaction), then link deletes-for-replacement and
    # adds, attribute sets and the other OVS ports in plan order, each run grouped by namespace
    plugged = {(op.ns, op.link.name) for op in stages[1] if isinstance(op, OvsPlug)}
    first = [op for op in stages[1] if isinstance(op, OvsPlug)
             or (isinstance(op, OvsPortDel) and (op.ns, op.name) in plugged)]
    errors += _run_sequence(first, done)
    errors += _run_sequence([op for op in stages[1] if not any(op is x for x in first)], done)
    by_ns: dict[str, list[Op]] = {}
    for op in stages[2]:
        by_ns.setdefault(op.ns, []).append(op)
    if parallel and len(by_ns) > 1:
        with ThreadPoolExecutor(max_workers=4) as pool:
            for errs in pool.map(lambda ns_ops: _run_sequence(ns_ops, done), by_ns.values()):
                errors += errs
    else:
        for ns_ops in by_ns.values():
            errors += _run_sequence(ns_ops, done)
    errors += _run_sequence([op for op in stages[3] if not isinstance(op, NetnsDel)], done)
    errors += _run_sequence([op for op in stages[3] if isinstance(op, NetnsDel)], done)
    return errors

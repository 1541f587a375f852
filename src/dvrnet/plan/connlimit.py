"""Connection limits in qrouter- and snat- namespaces: per VM (fixed IP) and per router, with
nftables `ct count`, so that one VM's connections never starve its neighbours of conntrack entries.

Invariants:
- Only the conntrack path is limited: one rule `ct state new jump conn_limit_new` (in qrouter-
  the FIP mark chain's second rule, prerouting after DNAT; in snat- and with stateless FIPs a
  forward-hook chain of its own) sends new connections to the regular chain `conn_limit_new`, so
  established flows and untracked (stateless FIP) traffic pass after one rule.
- A fixed IP is counted as the source of connections entering from the tenant side (`iifname !=`
  the router's external-side device) and, in qrouter-, as the destination of DNATed connections
  (FIP traffic, FIP->FIP hairpins included); both directions share one count per fixed IP.
- A new connection beyond a limit is dropped and counted: per fixed IP in the dynamic set
  `vm_drops` (one counter per address), per router in the counter of the router's rule.
- Counts live in dynamic sets (`NftMap.dynamic`): their elements belong to the packet path, are
  never planned and never compared, so they survive every element change of the table; a table
  replace (structure change: a new limit value) starts every count again from zero.
- Buckets: the kernel's `ct count` keeps one list of connections per key and, to drop closed ones,
  walks it (at most once per jiffy, and again after every 64 new connections) through every live
  entry: with tens of thousands of entries per list, new connections of that key stall and the
  walks eat the softirq time its neighbours' packets need (measured: docs/dataplane.md). A limit L
  is therefore kept over K = ceil(L / BUCKET) lists (at most MAX_BUCKETS) of L // K connections
  each (key `address . numgen inc mod K`: new connections go round robin): at most K * (L // K)
  <= L connections, refused once the list a new connection lands in is full.
- Defaults come from the namespace's conntrack limit M (`PlanConfig.conntrack_max`, read by the
  agent from net.netfilter.nf_conntrack_max): router = M * 7 // 8 (room left below M, so the table
  itself never fills and early drop never has to pick victims), VM = router // 4. An agent option
  sets either (0 turns it off); a port's `connection_limit` overrides the VM limit of its fixed
  IPs (None: the agent's; 0: no per-VM limit; the router limit still applies).
"""
from __future__ import annotations

from collections.abc import Iterable

from ..model import Router
from ..model.cloud import CloudView
from .config import PlanConfig
from .state import NftChain, NftMap, ipstr

BUCKET = 32              # connections per list (see the module docstring)
MAX_BUCKETS = 8192
VM_CONNS_SIZE = 1 << 20  # (fixed IP, bucket) lists with live connections, per namespace
VM_DROPS_SIZE = 1 << 16
DEFAULT_CLASS = 0        # the class of fixed IPs with the agent's VM limit


def vm_limits(cloud: CloudView, router: Router, host: str | None) -> list[tuple[str, int | None]]:
    """(fixed IP, port connection_limit) of the VM ports (not `network:*`) on the router's subnets;
    with HOST, only those bound to it (a qrouter- routes its own node's VMs)."""
    out = []
    for port in cloud.router_interfaces(router.id):
        for f in port.fixed_ips:
            for p in cloud.ports_by_subnet.get(f.subnet_id, ()):
                if p.device_owner.startswith("network:") or (host is not None and p.host != host):
                    continue
                ip = p.ip_on(f.subnet_id)
                if ip is not None:
                    out.append((ipstr(ip), p.connection_limit))
    return out


def buckets(limit: int) -> tuple[int, int]:
    """(K, per-list limit) for LIMIT: K = ceil(limit / BUCKET) lists (1..MAX_BUCKETS)."""
    k = max(1, min(MAX_BUCKETS, -(-limit // BUCKET)))
    return k, limit // k


def _suffix(limit: int, cfg: PlanConfig) -> str:
    return "" if limit == cfg.vm_limit() else f"_l{limit}"


def vm_classes(limits: Iterable[tuple[str, int | None]], cfg: PlanConfig) -> dict[int, frozenset[str]]:
    """{limit: fixed IPs} from (fixed IP, port override) pairs; IPs without a limit are left out."""
    out: dict[int, set[str]] = {}
    default = cfg.vm_limit()
    for ip, override in limits:
        lim = default if override is None else override
        if lim > 0:
            out.setdefault(lim, set()).add(ip)
    return {k: frozenset(v) for k, v in sorted(out.items())}


JUMP = "ct state new jump conn_limit_new"


def limit_parts(outside_dev: str, fixed_ips: Iterable[tuple[str, int | None]], cfg: PlanConfig,
                inbound_dnat: bool, base: bool = True) -> tuple[tuple[NftChain, ...], tuple[NftMap, ...]]:
    """The chains and sets of the limits of one namespace: the regular chain `conn_limit_new` and,
    with BASE, the forward-hook chain `conn_limit` holding only JUMP (without BASE the caller puts
    JUMP in a chain of its own after DNAT: one chain less on every packet's path). OUTSIDE_DEV: the
    device towards the external side (rfp- in qrouter-, qg- in snat-); FIXED_IPS: (address, port's
    connection_limit) of the VMs counted here; INBOUND_DNAT: also count DNATed connections by
    destination."""
    if not cfg.conn_limits:
        return (), ()
    classes = vm_classes(fixed_ips, cfg)
    if cfg.vm_limit() > 0:
        classes.setdefault(cfg.vm_limit(), frozenset())
    rules: list[str] = []
    maps: list[NftMap] = []
    for lim, ips in classes.items():
        sfx = _suffix(lim, cfg)
        k, per = buckets(lim)
        vms, conns = f"vms{sfx}", f"vm_conns{sfx}"
        maps.append(NftMap(vms, "ipv4_addr", None, frozenset((ip, None) for ip in ips)))
        maps.append(NftMap(conns, "ipv4_addr . mark", dynamic=True, size=VM_CONNS_SIZE))
        rules.append(f'iifname != "{outside_dev}" ip saddr @{vms} add @{conns} '
                     f'{{ ip saddr . numgen inc mod {k} ct count over {per} }} '
                     'update @vm_drops { ip saddr counter } drop')
        if inbound_dnat:
            rules.append(f'ct status dnat ip daddr @{vms} add @{conns} '
                         f'{{ ip daddr . numgen inc mod {k} ct count over {per} }} '
                         'update @vm_drops { ip daddr counter } drop')
    if classes:
        maps.append(NftMap("vm_drops", "ipv4_addr", dynamic=True, size=VM_DROPS_SIZE))
    rlim = cfg.router_limit()
    if rlim > 0:
        k, per = buckets(rlim)
        maps.append(NftMap("rt_conns", "mark", dynamic=True, size=MAX_BUCKETS))
        rules.append(f"add @rt_conns {{ numgen inc mod {k} ct count over {per} }} counter drop")
    if not rules:
        return (), ()
    # one rule per packet (`ct state new`); only new connections reach the limits
    new_chain = NftChain("conn_limit_new", "", "", 0, tuple(rules))
    if not base:
        return (new_chain,), tuple(maps)
    return (NftChain("conn_limit", "filter", "forward", 0, (JUMP,)), new_chain), tuple(maps)

"""The agent's status reports to the dvrnet server (docs/status.md): after every pass, what the
kernel holds of each FIP and router gateway port this host serves.

- `entries(cloud, host, desired, observed, prefix, problems)` (pure): the host's FIPs (on the
  routers placed here, `placement.local_fips`) and, on a SNAT node, its routers' gateway ports,
  each ACTIVE or ERROR with the reason, as `reconcile.status` finds them in the state read back
  after the pass (the computation Neutron mode's `update_floatingip_statuses` uses), with the
  association it applied (a FIP's port and fixed IP, a port's addresses);
- `Reporter.on_pass(cloud, report, desired, observed)` (the agent's pass hook, in the loop's
  thread: computes, never blocks on the network; `Entries`: only the routers whose inputs changed,
  so a FIP's pass does not walk every FIP of the host) hands them to a sender thread, which PUTs
  `/v2.0/dvrnet/hosts/<host>/status` at once: only the entries that changed since the last report
  the server accepted, and `removed` for resources no longer served here;
- after a start, and after any failed report, it first asks the server which rows it holds for
  this host, then sends every entry again (and removes the rest): an agent restart re-reports
  everything. A report is at most `CHUNK` entries per request (the body limit is 112 KiB);
- reporting never holds up the data plane: a server away means retries with a backoff (0.5 s
  doubling to 5 s), newer entries replacing older ones.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from typing import Any

import httpx

from ..model import Cloud, FloatingIP
from ..model.placement import fip_host, local_fips, routers_on_host, snat_routers_on_host
from ..plan import names
from ..plan.numbers import MAIN_TABLE_ID, NFT_TABLE
from ..plan.state import HostState, ipstr
from ..reconcile.status import DNAT_MAP, Found, Held, fips_found, gateway_found

log = logging.getLogger("dvrnet.agent")
CHUNK = 200
Key = tuple[str, str]           # (kind, id)


def entries(cloud: Cloud, host: str, desired: HostState, observed: HostState, prefix: str = "",
            problems: Sequence[str] = ()) -> dict[Key, dict[str, Any]]:
    """(kind, id) -> the report entry of every FIP and gateway port HOST serves in CLOUD."""
    out: dict[Key, dict[str, Any]] = {}
    held = Held(observed, prefix)
    for r in routers_on_host(cloud, host):
        fips = local_fips(cloud, host, r)
        by_id = {f.id: f for f in fips}
        for fid, found in fips_found(held, r.id, fips, problems).items():
            out[("floatingips", fid)] = _entry(by_id[fid], found)
    out.update(gateway_entries(cloud, host, desired, observed, prefix, problems))
    return out


def gateway_entries(cloud: Cloud, host: str, desired: HostState, observed: HostState, prefix: str,
                    problems: Sequence[str]) -> dict[Key, dict[str, Any]]:
    """The report entries of the gateway ports of the routers whose SNAT is on HOST."""
    out: dict[Key, dict[str, Any]] = {}
    for r in snat_routers_on_host(cloud, host):
        gw = cloud.gateway_port(r.id)
        if gw is None:
            continue
        found = gateway_found(desired, observed, prefix, r.id, gw, problems)
        out[("ports", gw.id)] = {"id": gw.id, "status": found.status, "reason": found.reason,
                                 "fixed_ips": [ipstr(x.ip_address) for x in gw.fixed_ips]}
    return out


class Entries:
    """`entries(cloud, host, desired, observed, prefix, problems)` for the agent's stream of passes:
    equal to it every time, computing only what can have changed since the last call, per router:
    - nothing, while the router, its FIP bucket (`fips_by_router`: rebuilt by `changeset.apply`
      only when one of its FIPs changed), the ports, the pass's problems and the observed fip-
      and qrouter- namespaces it is read from (the incremental reader keeps unchanged ones) are
      the same objects as last time;
    - else, while the router, the ports and the problems are the same and both observed
      namespaces were there before and are there now, only the FIPs that changed in the bucket
      (compared by identity) and those whose /32 or `fip2fixed` element changed in the kernel
      (set differences of the routes and of the map's elements, C-level);
    - else the router's FIPs all again.
    An entry equal to the last one is the same dict (the sender compares by identity first)."""

    def __init__(self) -> None:
        self._routers: dict[str, _RouterEntries] = {}

    def __call__(self, cloud: Cloud, host: str, desired: HostState, observed: HostState, prefix: str = "",
                 problems: Sequence[str] = ()) -> dict[Key, dict[str, Any]]:
        out: dict[Key, dict[str, Any]] = {}
        held = Held(observed, prefix)
        problems = tuple(problems)
        seen: dict[str, _RouterEntries] = {}
        obs = observed.namespaces
        for r in routers_on_host(cloud, host):
            fns = obs.get(names.fip_ns(prefix, r.gateway.network_id)) if r.gateway is not None else None
            key = (r, cloud.fips_by_router.get(r.id, ()), cloud.ports, problems, fns,
                   obs.get(names.qrouter_ns(prefix, r.id)))
            st = self._routers.get(r.id)
            if st is None or not st.update(cloud, host, key, held):
                st = _RouterEntries(cloud, host, key, held)
            seen[r.id] = st
            out.update(st.entries)
        self._routers = seen
        out.update(gateway_entries(cloud, host, desired, observed, prefix, problems))
        return out


def _entry(f: FloatingIP, found: Found) -> dict[str, Any]:
    return {"id": f.id, "status": found.status, "reason": found.reason, "port_id": f.port_id,
            "fixed_ip_address": None if f.fixed_ip_address is None else ipstr(f.fixed_ip_address)}


def _dnat(ns) -> frozenset | None:
    table = ns.nft.get(("ip", NFT_TABLE)) if ns is not None else None
    for m in table.maps if table is not None else ():
        if m.name == DNAT_MAP:
            return m.elements
    return None


class _RouterEntries:
    """One router's FIP entries (`Entries`) and the inputs they were computed from."""
    __slots__ = ("by_addr", "entries", "key", "local")

    def __init__(self, cloud: Cloud, host: str, key: tuple, held: Held):
        r, _, _, problems, _, _ = key
        self.key = key
        fips = local_fips(cloud, host, r)
        self.local: dict[str, FloatingIP] = {f.id: f for f in fips}
        self.by_addr: dict[str, str] = {ipstr(f.floating_ip_address): f.id for f in fips}
        self.entries: dict[Key, dict[str, Any]] = {
            ("floatingips", fid): _entry(self.local[fid], found) for fid, found in fips_found(held, r.id, fips, problems).items()}

    def update(self, cloud: Cloud, host: str, key: tuple, held: Held) -> bool:
        """Bring the entries to KEY's inputs; False when they must be computed again."""
        old = self.key
        if all(a is b for a, b in zip(old, key)):
            return True
        r, bucket, ports, problems, fns, qr = key
        if r is not old[0] or ports is not old[2] or problems != old[3]:
            return False
        if fns is None or qr is None or old[4] is None or old[5] is None:
            return False
        touched: set[str] = set()
        if bucket is not old[1]:
            now = {id(f) for f in bucket}
            was = {id(f) for f in old[1]}
            touched.update(f.id for f in old[1] if id(f) not in now)
            touched.update(f.id for f in bucket if id(f) not in was)
        if fns is not old[4]:
            for x in fns.routes.symmetric_difference(old[4].routes):
                if x.table == MAIN_TABLE_ID and x.dst.endswith("/32"):
                    fid = self.by_addr.get(x.dst[:-3])
                    if fid is not None:
                        touched.add(fid)
        if qr is not old[5]:
            a, b = _dnat(qr), _dnat(old[5])
            if a is None or b is None:
                return False
            for fip, _ in a.symmetric_difference(b):
                fid = self.by_addr.get(fip)
                if fid is not None:
                    touched.add(fid)
        self.key = key
        if not touched:
            return True
        for fid in touched:
            f = self.local.pop(fid, None)
            if f is not None:
                self.by_addr.pop(ipstr(f.floating_ip_address), None)
                self.entries.pop(("floatingips", fid), None)
        fresh = []
        for fid in touched:
            f = cloud.floatingips.get(fid)
            if f is not None and f.router_id == r.id and fip_host(cloud, f) == host:
                fresh.append(f)
                self.local[fid] = f
                self.by_addr[ipstr(f.floating_ip_address)] = fid
        for fid, found in fips_found(held, r.id, fresh, problems).items():
            self.entries[("floatingips", fid)] = _entry(self.local[fid], found)
        return True


class Reporter:
    def __init__(self, server: str, host: str, prefix: str = "", token: str | None = None,
                 max_backoff: float = 5.0):
        self.host, self.prefix, self.max_backoff = host, prefix, max_backoff
        headers = {"X-Auth-Token": token} if token else {}
        self.http = httpx.Client(base_url=server.rstrip("/"), headers=headers, timeout=httpx.Timeout(10, connect=3))
        self.stop = threading.Event()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._idle = threading.Event()
        self._idle.set()
        self._now: dict[Key, dict[str, Any]] | None = None     # the newest entries (guarded by _lock)
        self._revision = 0
        self._sent: dict[Key, dict[str, Any]] | None = None    # what the server holds; None: ask it
        self.reports = 0            # requests the server accepted
        self.entries = Entries()
        self._thread = threading.Thread(target=self._loop, name="status-report", daemon=True)
        self._thread.start()

    # ---- the pass hook (the agent's thread) --------------------------------------------------
    def on_pass(self, cloud: Cloud | None, report, desired: HostState, observed: HostState) -> None:
        if cloud is None:
            return
        now = self.entries(cloud, self.host, desired, observed, self.prefix,
                           tuple(report.errors) + tuple(report.differences))
        with self._lock:
            self._now, self._revision = now, report.revision
            self._idle.clear()
        self._wake.set()

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until the newest entries reached the server (True) or TIMEOUT passed (False)."""
        return self._idle.wait(timeout)

    def close(self) -> None:
        self.stop.set()
        self._wake.set()
        self._thread.join(5)
        self.http.close()

    # ---- the sender thread -------------------------------------------------------------------
    def _loop(self) -> None:
        backoff = 0.0
        while not self.stop.is_set():
            self._wake.wait(backoff or None)
            self._wake.clear()
            if self.stop.is_set():
                return
            with self._lock:
                now, rev = self._now, self._revision
            if now is None:
                continue
            try:
                self._send(now, rev)
            except (httpx.HTTPError, ValueError, KeyError) as e:
                backoff = min(self.max_backoff, max(0.5, backoff * 2))
                log.warning("status report to the server failed (%s); everything again in %.1f s", e, backoff)
                self._sent = None           # unsure what it holds now: ask, and send all again
                continue                    # after the backoff (or sooner, with a newer pass)
            backoff = 0.0
            with self._lock:
                if self._now is now:
                    self._idle.set()

    def _held(self) -> set[Key]:
        r = self.http.get(f"/v2.0/dvrnet/hosts/{self.host}/status")
        r.raise_for_status()
        rep = r.json()["status"]["reported"]
        return {(k, i) for k in ("floatingips", "ports") for i in rep.get(k, [])}

    def _send(self, now: dict[Key, dict[str, Any]], rev: int) -> None:
        if self._sent is None:
            held = self._held()
            ups = sorted(now)
            gone = sorted(held - set(now))
            why = "everything (start or after a failure)"
        else:
            sent = self._sent
            ups = sorted(k for k, e in now.items() if sent.get(k) is not e and sent.get(k) != e)
            gone = sorted(set(self._sent) - set(now))
            why = "changes"
            if not ups and not gone:
                return
        t0 = time.perf_counter()
        for i in range(0, max(len(ups), len(gone), 1), CHUNK):
            body: dict[str, Any] = {"revision": rev,
                                    "floatingips": [now[k] for k in ups[i:i + CHUNK] if k[0] == "floatingips"],
                                    "ports": [now[k] for k in ups[i:i + CHUNK] if k[0] == "ports"],
                                    "removed": {kind: [x for k, x in gone[i:i + CHUNK] if k == kind]
                                                for kind in ("floatingips", "ports")}}
            r = self.http.put(f"/v2.0/dvrnet/hosts/{self.host}/status", json={"status": body})
            r.raise_for_status()
            self.reports += 1
        self._sent = dict(now)
        log.info("status report (%s, view revision %d): %d entries, %d removed in %.0f ms%s", why, rev, len(ups),
                 len(gone), (time.perf_counter() - t0) * 1000,
                 "".join(f"; {k[1]} {now[k]['status']}" + (f": {now[k]['reason']}" if now[k]["reason"] else "")
                         for k in ups[:5] if now[k]["status"] != "ACTIVE"))

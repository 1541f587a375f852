"""One full sync with neutron-server, as an agent of HOST would do it, without serving anything:
what `dvrnet show` (Neutron mode) and the Neutron lab's convergence checks plan from, so they
judge the kernel by the very translation the agent uses. It creates nothing: no
`get_agent_gateway_port` (which would create an fg- port, racing the agent's own call).

`snapshots(hosts)` takes the views of several hosts in one go and asks `get_ports_by_subnet`
once per subnet for all of them (its answer does not depend on the host): what a look at a
whole cloud costs neutron-server is one `get_router_ids` + `sync_routers` per host plus one
port list per tenant subnet, not one per subnet and host."""
from __future__ import annotations

import threading
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from ..model import Cloud
from ..model.errors import DvrnetError
from .rpc import L3Plugin, transport
from .source import NeutronSource


@dataclass
class Snapshot:
    cloud: Cloud
    refused: dict[str, str]
    revision: int


_transports: dict[str, object] = {}


def transport_for(transport_url: str | None, oslo_conf=None):
    """One oslo.messaging transport per URL for this process (its reply listener is shared)."""
    key = transport_url or ""
    tr = _transports.get(key)
    if tr is None:
        tr = _transports[key] = transport(oslo_conf, transport_url)
    return tr


class _SharedPorts:
    """An L3Plugin whose `get_ports_by_subnet` answers are shared by the hosts of one look: the
    first thread to ask for a subnet fetches it, the others wait for that answer (or its error)."""

    def __init__(self, plugin: L3Plugin, shared: dict[str, Future], lock: threading.Lock):
        self._plugin = plugin
        self._shared = shared
        self._lock = lock

    def __getattr__(self, name):
        return getattr(self._plugin, name)

    def get_ports_by_subnet(self, subnet_id: str) -> list[dict]:
        with self._lock:
            fut = self._shared.get(subnet_id)
            mine = fut is None
            if fut is None:
                fut = self._shared[subnet_id] = Future()
        if mine:
            try:
                fut.set_result(self._plugin.get_ports_by_subnet(subnet_id))
            except Exception as e:      # noqa: BLE001 - not swallowed: every waiting host gets it from result()
                fut.set_exception(e)
        return fut.result()


def _one(host: str, mode: str, tr, timeout: float, shared: dict[str, Future] | None = None,
         lock: threading.Lock | None = None) -> Snapshot:
    plugin = L3Plugin(tr, host, timeout=timeout)
    src = NeutronSource(plugin if shared is None or lock is None else _SharedPorts(plugin, shared, lock), host, mode,
                        wait=0, max_backoff=0.1, create_agent_gateways=False)
    src._full_sync()        # raises RpcError (a DvrnetError) naming the call that failed
    if src.cloud is None:
        raise DvrnetError(f"no view of {host} from neutron-server")
    return Snapshot(src.cloud, dict(src.refused), src.revision)


def snapshot(host: str, mode: str, transport_url: str | None = None, oslo_conf=None, timeout: float = 60) -> Snapshot:
    """get_router_ids + sync_routers + get_ports_by_subnet for HOST; raises DvrnetError when
    neutron-server cannot be asked. The transport of a URL is kept for the next call."""
    return _one(host, mode, transport_for(transport_url, oslo_conf), timeout)


def snapshots(hosts: Sequence[tuple[str, str]], transport_url: str | None = None, oslo_conf=None,
              timeout: float = 60) -> dict[str, Snapshot]:
    """The snapshots of HOSTS ((name, mode) pairs), taken in parallel, each tenant subnet's ports
    fetched once for all of them. The transport is made in the calling thread (see transport_for)."""
    tr = transport_for(transport_url, oslo_conf)
    shared: dict[str, Future] = {}
    lock = threading.Lock()
    with ThreadPoolExecutor(max_workers=max(1, len(hosts))) as ex:
        snaps = list(ex.map(lambda h: _one(h[0], h[1], tr, timeout, shared, lock), hosts))
    return {h: s for (h, _m), s in zip(hosts, snaps)}

"""One full sync with neutron-server, as an agent of HOST would do it, without serving anything:
what `dvrnet show` (Neutron mode) and the Neutron lab's convergence checks plan from, so they
judge the kernel by the very translation the agent uses. It creates nothing: no
`get_agent_gateway_port` (which would create an fg- port, racing the agent's own call)."""
from __future__ import annotations

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


def snapshot(host: str, mode: str, transport_url: str | None = None, oslo_conf=None, timeout: float = 60) -> Snapshot:
    """get_router_ids + sync_routers + get_ports_by_subnet for HOST; raises DvrnetError when
    neutron-server cannot be asked. The transport of a URL is kept for the next call."""
    tr = transport_for(transport_url, oslo_conf)
    src = NeutronSource(L3Plugin(tr, host, timeout=timeout), host, mode, wait=0, max_backoff=0.1,
                        create_agent_gateways=False)
    src._full_sync()        # raises RpcError (a DvrnetError) naming the call that failed
    if src.cloud is None:
        raise DvrnetError(f"no view of {host} from neutron-server")
    return Snapshot(src.cloud, dict(src.refused), src.revision)

"""The only code that touches the system: read owned state, execute plans, verify.

iproute2's batch and JSON modes for netlink (one `ip -n NS -batch -` per namespace and stage),
`nft -f`/`nft -j` inside the namespace for nftables, /proc/sys from a thread that entered the
namespace for sysctls, and a raw AF_PACKET socket for gratuitous ARP. See docs/reconciler.md for
the measurements behind these choices.
"""
from .reconciler import Reconciler, Result

__all__ = ["Reconciler", "Result"]

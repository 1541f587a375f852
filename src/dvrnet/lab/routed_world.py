"""The routed lab's physical world (`lab up --routed`): instead of one L2 gateway per external
subnet, one top-of-rack router `Ltor` on the external segment (`seg0`, the private subnet's
gateway address, 100.64.0.254) running BIRD as AS 65000 (lab/tor.py), with the internet host
behind it (`inet0`, 10.255.100.1/30; the internet host routes every public subnet to it). The
public subnets are on no segment: the ToR reaches a FIP only through the route a node announced.
The ToR forwards with send_redirects off (FIP->FIP between nodes turns on it, in and out of seg0).
"""
from __future__ import annotations

from collections.abc import Iterable

from .sh import add_netns, ip_batch, parallel, sysctl
from .tor import TOR_ASN, start
from .world import NO_V6, WorldSpec, _batches


def tor_ns(spec: WorldSpec) -> str:
    return spec.ns("tor")


def build_tor(spec: WorldSpec, address: str, private: str, public: Iterable[str]) -> dict:
    ns, seg, inet = tor_ns(spec), spec.segment_ns, spec.internet_ns
    public = list(public)
    plen = private.split("/")[1]
    add_netns([ns])
    parallel([sysctl(ns, {**NO_V6, "net.ipv4.ip_forward": 1, "net.ipv4.conf.all.send_redirects": 0,
                          "net.ipv4.conf.default.send_redirects": 0})])
    _batches([ip_batch(seg, ["link add tor type veth peer name seg0 netns " + ns, "link set tor master br-seg up"], force=True),
              ip_batch(inet, ["link add tor type veth peer name inet0 netns " + ns,
                              "addr add 10.255.100.2/30 dev tor", "link set tor up"], force=True)])
    _batches([ip_batch(ns, ["link set lo up", f"addr add {address}/{plen} dev seg0", "link set seg0 up",
                            "link set inet0 up", "addr add 10.255.100.1/30 dev inet0",
                            f"route replace {spec.internet_address}/32 via 10.255.100.2 dev inet0"], force=True),
              ip_batch(inet, [f"route replace {c} via 10.255.100.1 dev tor src {spec.internet_address}"
                              for c in public], force=True)])
    start(ns, spec.state_dir, address, private, public)
    return {"netns": ns, "address": address, "asn": TOR_ASN, "public": public, "private": private}


def add_public_subnet(info, cidr: str) -> None:
    """A public subnet added to the routed network (T5): the ToR accepts its /32s from now on
    and the internet host routes it to the ToR. INFO (LabInfo) is updated and saved."""
    from .tor import reconfigure
    assert info.tor is not None
    public = list(info.tor.get("public", []))
    if cidr not in public:
        public.append(cidr)
    private = info.tor.get("private") or info.service_subnet
    reconfigure(info.state_dir, info.tor["address"], private, public)
    _batches([ip_batch(info.internet_netns, [f"route replace {cidr} via 10.255.100.1 dev tor src {info.internet_address}"],
                       force=True)])
    info.tor["public"] = public
    info.save()

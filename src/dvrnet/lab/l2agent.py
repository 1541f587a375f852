"""The lab's stand-in for Neutron's Open vSwitch L2 agent, one per node (docs/port-kinds.md):

    python -m dvrnet.lab.l2agent --db unix:DIR/db.sock --server URL --tag NET=VLAN ...

It follows the node's OVS database (an OVSDB `monitor` of the Interface table over the database
socket) and, for every port with `external_ids:iface-id` — the port dvrnet (or anyone) plugged
the way Neutron's interface driver does, in the dead VLAN 4095 — asks the server which network
that port is on and makes the port an access port of that network's local VLAN (`tag`, clearing
`vlan_mode`/`trunks`), as the real agent does when it binds a port. Ports of networks it has no
VLAN for, and ports the server does not know, stay in the dead VLAN.

What it does not do (the lab does it another way, see lab/ovs_world.py): tunnels and patch ports
(each network's VLAN on br-int has an access-port uplink into the lab's existing Linux bridge of
that network), OpenFlow rules (br-int runs the NORMAL action), DVR MAC rewriting (the bridge
nftables rules of the lab's Linux bridges already keep the distributed gateway's MAC and ARP on
the node), security groups.
"""
from __future__ import annotations

import argparse
import json
import logging
import signal
import socket
import subprocess
import sys
import time

import httpx

log = logging.getLogger("dvrnet.lab.l2agent")
DEAD_VLAN = 4095


class Monitor:
    """An OVSDB monitor of Interface (name, external_ids): yields {row uuid: new row or None}."""

    def __init__(self, db: str) -> None:
        path = db.split(":", 1)[1]
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        self.s.connect(path)
        self.buf = ""
        self.dec = json.JSONDecoder()
        self._send({"method": "monitor", "id": "m",
                    "params": ["Open_vSwitch", None, {"Interface": {"columns": ["name", "external_ids"]}}]})

    def _send(self, msg: dict) -> None:
        self.s.sendall(json.dumps(msg).encode())

    def updates(self):
        while True:
            while True:
                text = self.buf.lstrip()
                try:
                    msg, end = self.dec.raw_decode(text)
                except ValueError:
                    break
                self.buf = text[end:]
                if msg.get("method") == "echo":
                    self._send({"id": msg.get("id"), "result": msg.get("params"), "error": None})
                elif msg.get("id") == "m":
                    if msg.get("error"):
                        raise RuntimeError(f"monitor refused: {msg['error']}")
                    yield _rows(msg.get("result") or {})
                elif msg.get("method") == "update":
                    yield _rows(msg["params"][1])
            chunk = self.s.recv(1 << 16)
            if not chunk:
                raise RuntimeError("database connection closed")
            self.buf += chunk.decode()


def _rows(update: dict) -> dict[str, dict | None]:
    out = {}
    for uuid, change in (update.get("Interface") or {}).items():
        out[uuid] = change.get("new")
    return out


def _ids(row: dict) -> dict[str, str]:
    v = row.get("external_ids")
    return {k: x for k, x in v[1]} if isinstance(v, list) and v and v[0] == "map" else {}


class Agent:
    def __init__(self, db: str, server: str, tags: dict[str, int]) -> None:
        self.db, self.tags = db, tags
        self.http = httpx.Client(base_url=server.rstrip("/"), timeout=10)
        self.network_of: dict[str, str | None] = {}      # iface-id -> network id (None: unknown port)
        self.bound: dict[str, tuple[str, int]] = {}       # row uuid -> (name, tag) set

    def network(self, port_id: str) -> str | None:
        if port_id not in self.network_of or self.network_of[port_id] is None:
            try:
                r = self.http.get(f"/v2.0/ports/{port_id}")
                self.network_of[port_id] = r.json()["port"]["network_id"] if r.status_code == 200 else None
            except (httpx.HTTPError, ValueError, KeyError) as e:
                log.warning("port %s: %s", port_id, e)
                return None
        return self.network_of[port_id]

    def handle(self, rows: dict[str, dict | None]) -> None:
        todo: list[tuple[str, str, int]] = []
        for uuid, row in rows.items():
            if row is None:
                self.bound.pop(uuid, None)
                continue
            name, port_id = row.get("name"), _ids(row).get("iface-id")
            if not name or not port_id:
                continue
            net = self.network(port_id)
            tag = self.tags.get(net or "")
            if tag is None or self.bound.get(uuid) == (name, tag):
                continue
            todo.append((uuid, name, tag))
        if not todo:
            return
        args = []
        for _uuid, name, tag in todo:
            args += ["--", "set", "Port", name, f"tag={tag}", "--", "clear", "Port", name, "vlan_mode",
                     "--", "clear", "Port", name, "trunks"]
        p = subprocess.run(["ovs-vsctl", f"--db={self.db}", "--timeout=5", "--no-wait", *args],
                           capture_output=True, text=True, check=False)
        if p.returncode != 0:                         # e.g. a port deleted meanwhile: one by one
            for uuid, name, tag in todo:
                q = subprocess.run(["ovs-vsctl", f"--db={self.db}", "--timeout=5", "--no-wait", "--", "set", "Port",
                                    name, f"tag={tag}", "--", "clear", "Port", name, "vlan_mode", "--", "clear",
                                    "Port", name, "trunks"], capture_output=True, text=True, check=False)
                if q.returncode == 0:
                    self.bound[uuid] = (name, tag)
            return
        for uuid, name, tag in todo:
            self.bound[uuid] = (name, tag)
            log.info("port %s: VLAN %d", name, tag)

    def run(self) -> None:
        while True:
            try:
                mon = Monitor(self.db)
                for rows in mon.updates():
                    self.handle(rows)
            except (OSError, RuntimeError) as e:     # the database restarts: reconnect
                log.warning("%s; reconnecting", e)
                self.bound.clear()
                time.sleep(0.2)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="dvrnet.lab.l2agent", description=__doc__.split("\n\n")[0])
    ap.add_argument("--db", required=True)
    ap.add_argument("--server", required=True)
    ap.add_argument("--tag", action="append", default=[], metavar="NETWORK=VLAN")
    ap.add_argument("--lab", default="", help="the lab's prefix (so `lab down` finds this process)")
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    tags = {}
    for t in a.tag:
        net, _, vlan = t.partition("=")
        tags[net] = int(vlan)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    Agent(a.db, a.server, tags).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())

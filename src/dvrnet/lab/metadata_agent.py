"""The lab's stand-in for neutron-metadata-agent: an HTTP server on one unix socket per node (the
socket each node's agent is given as `--metadata-socket`), answering every request with what it
received, as JSON, so a test sees what the router's metadata proxy forwarded:

    {"agent": "<node>", "method": "GET", "path": "/latest/meta-data/instance-id",
     "headers": {"x-neutron-router-id": "...", "x-forwarded-for": "10.0.1.3", ...}}

Header names are lower-cased; a header that arrived more than once is a list. The real agent
looks the instance up from those two headers and proxies to Nova; this one only echoes.

    python -m dvrnet.lab.metadata_agent NODE=SOCKET [NODE=SOCKET ...]
"""
from __future__ import annotations

import asyncio
import json
import os
import signal
import sys


def _headers(block: bytes) -> tuple[str, str, dict[str, object]]:
    lines = block.decode("latin-1").split("\r\n")
    method, path = (lines[0].split(" ") + ["", ""])[:2]
    headers: dict[str, object] = {}
    for line in lines[1:]:
        if ":" not in line:
            continue
        k, v = line.split(":", 1)
        k, v = k.strip().lower(), v.strip()
        old = headers.get(k)
        headers[k] = v if old is None else (old + [v] if isinstance(old, list) else [old, v])
    return method, path, headers


def _handler(name: str):
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    block = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
                    return
                method, path, headers = _headers(block[:-4])
                n = int(str(headers.get("content-length", "0")) or 0)
                if n:
                    await reader.readexactly(n)
                body = json.dumps({"agent": name, "method": method, "path": path, "headers": headers},
                                  sort_keys=True).encode()
                close = str(headers.get("connection", "")).lower() == "close"
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                             + f"Content-Length: {len(body)}\r\n".encode()
                             + (b"Connection: close\r\n" if close else b"") + b"\r\n" + body)
                await writer.drain()
                if close:
                    return
        finally:
            writer.close()
    return handle


async def serve(sockets: dict[str, str]) -> None:
    servers = []
    for name, path in sockets.items():
        if os.path.exists(path):
            os.unlink(path)
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        servers.append(await asyncio.start_unix_server(_handler(name), path))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print("ready", flush=True)
    await stop.wait()
    for s in servers:
        s.close()
    for path in sockets.values():
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


def main(argv: list[str]) -> int:
    sockets = {}
    for a in argv:
        name, sep, path = a.partition("=")
        if not sep or not name or not path:
            print(f"expected NODE=SOCKET, got {a!r}", file=sys.stderr)
            return 2
        sockets[name] = path
    if not sockets:
        print("usage: python -m dvrnet.lab.metadata_agent NODE=SOCKET [NODE=SOCKET ...]", file=sys.stderr)
        return 2
    asyncio.run(serve(sockets))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

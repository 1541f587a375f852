"""Real flows for the data-plane benchmark: iperf3 (Debian's) for TCP throughput, and dvrflow — a small
C program of ours (bench/dvrflow.c, built by `make` next to the venv's python, or here on first use
with gcc) for small-packet UDP, new connections per second, held flows and probes.

Every process runs inside a namespace the bench created and is stopped by its PID.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from dvrnet.kernel import netns

SOURCE = Path(__file__).with_name("dvrflow.c")


def generator() -> str:
    """Path of a dvrflow binary built from this source: the venv's (`make`) when it is current,
    else one compiled now into a cache directory named after the source's hash."""
    venv = Path(sys.prefix) / "bin" / "dvrflow"
    if venv.exists() and venv.stat().st_mtime >= SOURCE.stat().st_mtime:
        return str(venv)
    digest = hashlib.sha256(SOURCE.read_bytes()).hexdigest()[:12]
    out = Path(tempfile.gettempdir()) / f"dvrflow-{digest}" / "dvrflow"
    if not out.exists():
        if shutil.which("gcc") is None:
            raise RuntimeError("dvrflow is not built and gcc is missing: run `make` (it installs gcc)")
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(f".{os.getpid()}")
        p = subprocess.run(["gcc", "-O2", "-o", str(tmp), str(SOURCE)], capture_output=True, text=True, check=False)
        if p.returncode != 0:
            raise RuntimeError(f"gcc dvrflow.c: {p.stderr.strip()[:400]}")
        tmp.replace(out)
    return str(out)


def kv(line: str) -> dict[str, str]:
    return dict(part.split("=", 1) for part in line.split() if "=" in part)


def spawn(ns: str, argv: list[str], wait_ready: bool = True) -> subprocess.Popen:
    """Start ARGV in NS (its own process group); with WAIT_READY, until it prints `ready=1`."""
    p = subprocess.Popen(netns.nsenter(ns) + argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         start_new_session=True)
    if wait_ready:
        assert p.stdout is not None
        line = p.stdout.readline()
        if "ready=1" not in line and "listening" not in line:
            stop(p)
            raise RuntimeError(f"{argv[0]} {argv[1] if len(argv) > 1 else ''} in {ns} did not start: "
                               f"{line.strip()} {p.stderr.read()[:200] if p.stderr else ''}")
    return p


def stop(p: subprocess.Popen) -> None:
    if p.poll() is None:
        try:
            os.killpg(p.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            p.wait(3)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait(3)
    for f in (p.stdout, p.stderr):
        if f is not None:
            f.close()


def run(ns: str, argv: list[str], timeout: float) -> dict[str, str]:
    p = subprocess.run(netns.nsenter(ns) + argv, capture_output=True, text=True, timeout=timeout, check=False)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:2])} in {ns}: {p.stderr.strip()[:300]}")
    return kv(p.stdout.strip().splitlines()[-1])


def start_crr_server(gen: str, ns: str, addr: str, port: int = 5001) -> subprocess.Popen:
    return spawn(ns, [gen, "tcp-serve", addr, str(port)])


def tcp_bps(client_ns: str, server_ns: str, src: str, dst: str, seconds: float, port: int = 5201) -> float:
    """iperf3 TCP throughput CLIENT_NS -> SERVER_NS (bits/s received)."""
    srv = subprocess.Popen(netns.nsenter(server_ns) + ["iperf3", "-s", "-1", "-B", dst, "-p", str(port)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        out = None
        for _ in range(50):                                   # the server needs a moment to listen
            p = subprocess.run(netns.nsenter(client_ns) + ["iperf3", "-c", dst, "-B", src, "-p", str(port), "-t",
                                                           str(max(1, round(seconds))), "-J"],   # whole seconds
                               capture_output=True, text=True, timeout=seconds + 20, check=False)
            out = json.loads(p.stdout or "{}")
            if "error" not in out:
                break
            if "refused" not in out["error"]:
                raise RuntimeError(f"iperf3: {out['error']}")
            time.sleep(0.05)
        if not out or "end" not in out:
            raise RuntimeError(f"iperf3: {out.get('error') if out else 'no output'}")
        return float(out["end"]["sum_received"]["bits_per_second"])
    finally:
        stop(srv)


def udp_pps(gen: str, sender_ns: str, sink_ns: str, src: str, dst: str, seconds: float, port: int = 9000,
            payload: int = 18) -> float:
    """Small-packet UDP SENDER_NS -> SINK_NS: datagrams per second received."""
    sink = spawn(sink_ns, [gen, "udp-sink", dst, str(port), "300"])
    try:
        run(sender_ns, [gen, "udp-send", dst, str(port), f"{seconds:g}", str(payload), src], seconds + 20)
        out, _ = sink.communicate(timeout=35)
        return float(kv(out.strip().splitlines()[-1])["pps"])
    finally:
        stop(sink)


def crr_cps(gen: str, client_ns: str, src: str, target: str, seconds: float, port: int = 5001,
            concurrency: int = 16) -> float:
    """New TCP connections per second CLIENT_NS -> TARGET (connect, then close with a reset)."""
    out = run(client_ns, [gen, "tcp-crr", target, str(port), f"{seconds:g}", str(concurrency), src], seconds + 20)
    return float(out["cps"])

"""Helpers for the server tests: an app on a fresh SQLite file, a real uvicorn server on a free
127.0.0.1 port, token files, and a small topology builder that speaks raw HTTP."""
from __future__ import annotations

import json
import socket
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest
import uvicorn

from waiting import wait_for

warnings.filterwarnings("ignore", category=DeprecationWarning)
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from dvrnet.api.app import create_app

ADMIN_TOKEN, ALICE_TOKEN, BOB_TOKEN = "admin-secret", "alice-secret", "bob-secret"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def running_server(app, port: int | None = None) -> Iterator[str]:
    """Serve `app` with uvicorn in a thread on PORT (default: a free one); yields the base URL."""
    port = port or free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           timeout_graceful_shutdown=1))
    t = threading.Thread(target=server.run, daemon=True)
    t.start()
    wait_for(lambda: server.started or not t.is_alive(), 15, "uvicorn to start", step=0.02)
    if not server.started:
        raise RuntimeError("uvicorn did not start")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        t.join(10)


@pytest.fixture
def db_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'dvrnet.db'}"


@pytest.fixture
def tokens_file(tmp_path) -> str:
    p = tmp_path / "tokens.json"
    p.write_text(json.dumps({"tokens": {
        ADMIN_TOKEN: {"project_id": "admin-project", "admin": True},
        ALICE_TOKEN: {"project_id": "alice", "admin": False},
        BOB_TOKEN: {"project_id": "bob", "admin": False},
    }}))
    return str(p)


@pytest.fixture
def client(db_url) -> Iterator[TestClient]:
    with TestClient(create_app(db_url), raise_server_exceptions=False) as c:
        yield c


@pytest.fixture
def token_app(db_url, tokens_file):
    return create_app(db_url, auth="token", tokens=tokens_file)


def ok(r, status: int | tuple = (200, 201, 204)) -> dict:
    statuses = status if isinstance(status, tuple) else (status,)
    assert r.status_code in statuses, f"{r.request.method} {r.request.url}: {r.status_code} {r.text}"
    return r.json() if r.content else {}


def neutron_error(r, status: int, type_: str | None = None) -> dict:
    assert r.status_code == status, f"{r.request.method} {r.request.url}: {r.status_code} {r.text}"
    body = r.json()
    assert set(body) == {"NeutronError"}, body
    err = body["NeutronError"]
    assert set(err) == {"type", "message", "detail"} and err["detail"] == "", err
    assert isinstance(err["message"], str) and err["message"], err
    if type_ is not None:
        assert err["type"] == type_, err
    return err


def build_topology(c, headers=None) -> dict:
    """Hosts, an external network with three subnets, a router with a gateway, a tenant network
    with an interface, and a compute port on compute1. Returns the ids."""
    h = headers or {}
    ok(c.post("/v2.0/dvrnet/hosts", json={"host": {"name": "network1", "mode": "dvr_snat"}}, headers=h))
    ok(c.post("/v2.0/dvrnet/hosts", json={"host": {"name": "compute1", "mode": "dvr"}}, headers=h))
    ext = ok(c.post("/v2.0/networks", json={"network": {"name": "ext", "router:external": True}}, headers=h))["network"]
    sub = lambda body: ok(c.post("/v2.0/subnets", json={"subnet": body}, headers=h))["subnet"]
    s_gw = sub({"network_id": ext["id"], "cidr": "203.0.113.0/24", "name": "ext-a"})
    s_fip = sub({"network_id": ext["id"], "cidr": "198.51.100.0/24", "name": "ext-b",
                 "service_types": ["network:floatingip"]})
    s_fg = sub({"network_id": ext["id"], "cidr": "100.64.0.0/24", "gateway_ip": None, "name": "fg",
                "service_types": ["network:floatingip_agent_gateway"]})
    router = ok(c.post("/v2.0/routers", json={"router": {"name": "r1", "external_gateway_info": {
        "network_id": ext["id"]}}}, headers=h))["router"]
    net = ok(c.post("/v2.0/networks", json={"network": {"name": "priv"}}, headers=h))["network"]
    s_priv = sub({"network_id": net["id"], "cidr": "10.0.0.0/24", "name": "priv-sub"})
    ok(c.put(f"/v2.0/routers/{router['id']}/add_router_interface", json={"subnet_id": s_priv["id"]}, headers=h))
    port = ok(c.post("/v2.0/ports", json={"port": {"network_id": net["id"], "device_owner": "compute:nova",
                                                    "binding:host_id": "compute1", "name": "vm1"}}, headers=h))["port"]
    return {"ext": ext["id"], "s_gw": s_gw["id"], "s_fip": s_fip["id"], "s_fg": s_fg["id"],
            "router": router["id"], "net": net["id"], "s_priv": s_priv["id"], "port": port["id"]}


__all__ = ["TestClient", "build_topology", "httpx", "neutron_error", "ok", "running_server"]


# ---- a throw-away PostgreSQL server --------------------------------------------------------
import shutil
import tempfile

from dvrnet.lab.daemons import DaemonError, start_postgres


@contextmanager
def postgres_server() -> Iterator[str]:
    """A PostgreSQL server of its own in a temp dir (dvrnet.lab.daemons.start_postgres: initdb and
    start as an unprivileged user on 127.0.0.1 at a free port); yields a postgresql:// URL; stops
    it by its pid and removes it afterwards. Skips, with the reason, when it cannot start."""
    tmp = tempfile.mkdtemp(prefix="dvrnet-pg-")
    try:
        try:
            pg = start_postgres(tmp)
        except DaemonError as e:
            pytest.skip(str(e))
        try:
            yield pg.url
        finally:
            pg.stop()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@contextmanager
def fresh_postgres_db(base_url: str, name: str) -> Iterator[str]:
    """A new database on the server at `base_url`; dropped afterwards."""
    import sqlalchemy as sa

    from dvrnet.store.engine import normalize_url
    eng = sa.create_engine(normalize_url(base_url), isolation_level="AUTOCOMMIT")
    with eng.connect() as c:
        c.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield base_url.rsplit("/", 1)[0] + "/" + name
    finally:
        with eng.connect() as c:
            c.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        eng.dispose()

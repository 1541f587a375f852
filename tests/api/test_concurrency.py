"""Concurrent writers never hand out one address twice: 50 parallel FIP creations over HTTP
against a real uvicorn server, on SQLite and on a real PostgreSQL server started for the test
(two servers on one database there), plus the database's own UNIQUE guard."""
from __future__ import annotations

import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import sqlalchemy as sa
from api_helpers import build_topology, fresh_postgres_db, ok, postgres_server, running_server
from sqlalchemy.exc import IntegrityError

from dvrnet.api.app import create_app
from dvrnet.store import tables as t

N = 50


def _fire(urls: list[str], ext: str, subnet: str) -> tuple[list[str], float]:
    barrier = threading.Barrier(N)

    def one(i: int):
        with httpx.Client(base_url=urls[i % len(urls)], timeout=60) as c:
            barrier.wait()
            r = c.post("/v2.0/floatingips", json={"floatingip": {"floating_network_id": ext, "subnet_id": subnet}})
            return ok(r, 201)["floatingip"]["floating_ip_address"]

    t0 = time.monotonic()
    with ThreadPoolExecutor(N) as pool:
        addrs = list(pool.map(one, range(N)))
    return addrs, time.monotonic() - t0


def _check(urls, app, addrs, elapsed, label):
    assert len(addrs) == N and len(set(addrs)) == N, f"{label}: duplicate addresses {sorted(addrs)}"
    with httpx.Client(base_url=urls[0]) as c:
        listed = [f["floating_ip_address"] for f in ok(c.get("/v2.0/floatingips"))["floatingips"]]
    assert sorted(listed) == sorted(addrs)
    with app.state.store.engine.connect() as conn:
        n = conn.execute(sa.select(sa.func.count()).select_from(t.ip_allocations)
                         .where(t.ip_allocations.c.floatingip_id.is_not(None))).scalar_one()
    assert n == N
    print(f"{label}: {N} parallel FIP creations in {elapsed:.2f}s")


def test_parallel_fips_sqlite(db_url):
    app = create_app(db_url)
    with running_server(app) as url:
        with httpx.Client(base_url=url) as c:
            ids = build_topology(c)
        addrs, elapsed = _fire([url], ids["ext"], ids["s_fip"])
        _check([url], app, addrs, elapsed, "sqlite")


def test_unique_constraint_is_the_last_guard(db_url):
    app = create_app(db_url)
    store = app.state.store
    with running_server(app) as url, httpx.Client(base_url=url) as c:
        ids = build_topology(c)
        fip = ok(c.post("/v2.0/floatingips", json={"floatingip": {"floating_network_id": ids["ext"]}}))["floatingip"]
    with pytest.raises(IntegrityError), store.engine.begin() as conn:
        conn.execute(t.ip_allocations.insert().values(
            network_id=ids["ext"], ip_address=fip["floating_ip_address"], subnet_id=fip["subnet_id"],
            port_id=ids["port"], floatingip_id=None, position=1))


@pytest.fixture(scope="module")
def postgres():
    with postgres_server() as url:
        yield url


def test_parallel_fips_postgresql_two_servers(postgres):
    with fresh_postgres_db(postgres, f"dvrnet_{uuid.uuid4().hex[:8]}") as db:
        a, b = create_app(db), create_app(db)
        with running_server(a) as url_a, running_server(b) as url_b:
            with httpx.Client(base_url=url_a) as c:
                ids = build_topology(c)
            addrs, elapsed = _fire([url_a, url_b], ids["ext"], ids["s_fip"])
            _check([url_a, url_b], a, addrs, elapsed, "postgresql, 2 servers")
            with httpx.Client(base_url=url_b) as c:      # B sees what A created, and both agree
                assert ok(c.get("/v2.0/dvrnet/cloud")) == ok(httpx.get(url_a + "/v2.0/dvrnet/cloud"))
                neutron = ok(c.delete(f"/v2.0/subnets/{ids['s_fip']}"), (409,))
                assert neutron["NeutronError"]["type"] == "SubnetInUse"


def test_postgresql_schema_restart_and_bad_input(postgres):
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext
    from api_helpers import TestClient, neutron_error

    from dvrnet.store.tables import metadata
    with fresh_postgres_db(postgres, f"dvrnet_{uuid.uuid4().hex[:8]}") as db:
        with TestClient(create_app(db)) as c:
            ids = build_topology(c)
            before = ok(c.get("/v2.0/dvrnet/cloud"))
            neutron_error(c.delete(f"/v2.0/subnets/{ids['s_gw']}"), 409, "SubnetInUse")
            neutron_error(c.get("/v2.0/networks/not-a-uuid"), 404, "NetworkNotFound")
            neutron_error(c.post("/v2.0/subnets", json={"subnet": {"network_id": ids["net"], "cidr": "10.0.0.0/16"}}), 400)
        with TestClient(create_app(db)) as c:
            assert ok(c.get("/v2.0/dvrnet/cloud")) == before
            with c.app.state.store.engine.connect() as conn:
                assert compare_metadata(MigrationContext.configure(conn), metadata) == []

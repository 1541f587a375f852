"""The relational schema (SQLAlchemy Core). Migrations 0001 to 0005 create exactly these tables.

One table per resource with a column per scalar model field; list-valued fields that nothing
queries (allocation pools, service types, DNS servers, a gateway's requested fixed IPs) are JSON
text. Addresses held on a network live in `ip_allocations`, one row per port fixed IP or floating
IP, with UNIQUE (network_id, ip_address): whatever the locking does, the database itself refuses
to record one address twice on a network. `revision` holds the single global revision number (row 1) and the generation of the agents'
status reports (row 2, migration 0005: it moves with every report, the cloud's revision does not).
Every resource row carries Neutron's bookkeeping (created_at, updated_at, revision_number,
description), which the model does not know about.
"""
from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()


def _meta_columns() -> list[sa.Column]:
    return [
        sa.Column("description", sa.Text, nullable=False, server_default=""),
        sa.Column("created_at", sa.String(32), nullable=False),
        sa.Column("updated_at", sa.String(32), nullable=False),
        sa.Column("revision_number", sa.Integer, nullable=False, server_default="1"),
    ]


revision = sa.Table(
    "revision", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("value", sa.BigInteger, nullable=False),
)

networks = sa.Table(
    "networks", metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("project_id", sa.String(255), nullable=False),
    sa.Column("external", sa.Boolean, nullable=False),
    sa.Column("mtu", sa.Integer, nullable=False),
    sa.Column("shared", sa.Boolean, nullable=False),
    sa.Column("tags", sa.Text, nullable=False, server_default="[]"),     # migration 0002
    *_meta_columns(),
)

subnets = sa.Table(
    "subnets", metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("network_id", sa.String(64), sa.ForeignKey("networks.id"), nullable=False, index=True),
    sa.Column("cidr", sa.String(64), nullable=False),
    sa.Column("gateway_ip", sa.String(64), nullable=True),
    sa.Column("allocation_pools", sa.Text, nullable=False),
    sa.Column("service_types", sa.Text, nullable=False),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("project_id", sa.String(255), nullable=False),
    sa.Column("enable_dhcp", sa.Boolean, nullable=False),
    sa.Column("dns_nameservers", sa.Text, nullable=False),
    *_meta_columns(),
)

routers = sa.Table(
    "routers", metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("distributed", sa.Boolean, nullable=False),
    sa.Column("gw_network_id", sa.String(64), sa.ForeignKey("networks.id"), nullable=True),
    sa.Column("gw_external_fixed_ips", sa.Text, nullable=True),
    sa.Column("gw_enable_snat", sa.Boolean, nullable=True),
    sa.Column("project_id", sa.String(255), nullable=False),
    sa.Column("admin_state_up", sa.Boolean, nullable=False),
    *_meta_columns(),
)

ports = sa.Table(
    "ports", metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("network_id", sa.String(64), sa.ForeignKey("networks.id"), nullable=False, index=True),
    sa.Column("device_owner", sa.String(255), nullable=False),
    sa.Column("device_id", sa.String(255), nullable=False, index=True),
    sa.Column("host", sa.String(255), nullable=False),
    sa.Column("mac_address", sa.String(32), nullable=False),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("project_id", sa.String(255), nullable=False),
    sa.Column("admin_state_up", sa.Boolean, nullable=False),
    sa.Column("connection_limit", sa.Integer, nullable=True),       # migration 0004
    *_meta_columns(),
)

floatingips = sa.Table(
    "floatingips", metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("floating_network_id", sa.String(64), sa.ForeignKey("networks.id"), nullable=False),
    sa.Column("floating_ip_address", sa.String(64), nullable=False),
    sa.Column("subnet_id", sa.String(64), sa.ForeignKey("subnets.id"), nullable=False),
    sa.Column("port_id", sa.String(64), nullable=True),
    sa.Column("fixed_ip_address", sa.String(64), nullable=True),
    sa.Column("router_id", sa.String(64), nullable=True),
    sa.Column("project_id", sa.String(255), nullable=False),
    *_meta_columns(),
)

hosts = sa.Table(
    "hosts", metadata,
    sa.Column("name", sa.String(255), primary_key=True),
    sa.Column("mode", sa.String(32), nullable=False),
    sa.Column("created_at", sa.String(32), nullable=False),
    sa.Column("heartbeat_at", sa.String(32), nullable=True),
)

ip_allocations = sa.Table(
    "ip_allocations", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("network_id", sa.String(64), sa.ForeignKey("networks.id"), nullable=False),
    sa.Column("ip_address", sa.String(64), nullable=False),
    sa.Column("subnet_id", sa.String(64), sa.ForeignKey("subnets.id"), nullable=False),
    sa.Column("port_id", sa.String(64), sa.ForeignKey("ports.id"), nullable=True, index=True),
    sa.Column("floatingip_id", sa.String(64), sa.ForeignKey("floatingips.id"), nullable=True, index=True),
    sa.Column("position", sa.Integer, nullable=False, server_default="0"),
    sa.UniqueConstraint("network_id", "ip_address", name="uq_ip_allocations_network_ip"),
    sa.CheckConstraint("(port_id IS NULL) <> (floatingip_id IS NULL)", name="ck_ip_allocations_one_holder"),
)

# The change log (store/changelog.py; migration 0003): per write, the resources it changed (host
# NULL) and the change of every host view it concerned (host set).
change_log = sa.Table(
    "change_log", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("revision", sa.BigInteger, nullable=False, index=True),
    sa.Column("host", sa.String(255), nullable=True),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("resource_id", sa.String(255), nullable=False),
    sa.Column("op", sa.String(8), nullable=False),
    sa.Index("ix_change_log_host_revision", "host", "revision"),
)

# One row: the database's identity and the revision above which the change log is complete.
feed_state = sa.Table(
    "feed_state", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("database_id", sa.String(64), nullable=False),
    sa.Column("log_floor", sa.BigInteger, nullable=False),
)

# A random stamp per revision, written with it (store/changelog.py; migration 0006): which write of
# revision R a cursor was handed at (a database restored from a backup gives its lost revisions'
# numbers to new writes, with new stamps). Trimmed with the change log.
revision_stamps = sa.Table(
    "revision_stamps", metadata,
    sa.Column("revision", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("stamp", sa.String(32), nullable=False),
)

# What each host's agent last reported of the FIPs and router gateway ports it serves
# (store/statuses.py; migration 0005): one row per (host, kind, resource), written by the
# agent-facing report call, never through `Store.write` (no revision, no change log, no wake-up).
agent_statuses = sa.Table(
    "agent_statuses", metadata,
    sa.Column("host", sa.String(255), primary_key=True),
    sa.Column("kind", sa.String(32), primary_key=True),
    sa.Column("resource_id", sa.String(255), primary_key=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("port_id", sa.String(64), nullable=True),
    sa.Column("addresses", sa.Text, nullable=False, server_default=""),
    sa.Column("revision", sa.BigInteger, nullable=False),
    sa.Column("reason", sa.Text, nullable=True),
    sa.Column("reported_at", sa.String(32), nullable=False),
    sa.Index("ix_agent_statuses_resource", "kind", "resource_id"),
)

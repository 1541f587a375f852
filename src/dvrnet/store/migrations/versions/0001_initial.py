"""Initial schema: resources, ip_allocations with UNIQUE (network_id, ip_address), global revision.

Revision ID: 0001
Revises:
"""
import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _meta():
    return [
        sa.Column("description", sa.Text, nullable=False, server_default=""),
        sa.Column("created_at", sa.String(32), nullable=False),
        sa.Column("updated_at", sa.String(32), nullable=False),
        sa.Column("revision_number", sa.Integer, nullable=False, server_default="1"),
    ]


def upgrade() -> None:
    rev = op.create_table(
        "revision",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("value", sa.BigInteger, nullable=False),
    )
    op.bulk_insert(rev, [{"id": 1, "value": 0}])
    op.create_table(
        "networks",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("project_id", sa.String(255), nullable=False),
        sa.Column("external", sa.Boolean, nullable=False),
        sa.Column("mtu", sa.Integer, nullable=False),
        sa.Column("shared", sa.Boolean, nullable=False),
        *_meta(),
    )
    op.create_table(
        "subnets",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("network_id", sa.String(64), sa.ForeignKey("networks.id"), nullable=False),
        sa.Column("cidr", sa.String(64), nullable=False),
        sa.Column("gateway_ip", sa.String(64), nullable=True),
        sa.Column("allocation_pools", sa.Text, nullable=False),
        sa.Column("service_types", sa.Text, nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("project_id", sa.String(255), nullable=False),
        sa.Column("enable_dhcp", sa.Boolean, nullable=False),
        sa.Column("dns_nameservers", sa.Text, nullable=False),
        *_meta(),
    )
    op.create_index("ix_subnets_network_id", "subnets", ["network_id"])
    op.create_table(
        "routers",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("distributed", sa.Boolean, nullable=False),
        sa.Column("gw_network_id", sa.String(64), sa.ForeignKey("networks.id"), nullable=True),
        sa.Column("gw_external_fixed_ips", sa.Text, nullable=True),
        sa.Column("gw_enable_snat", sa.Boolean, nullable=True),
        sa.Column("project_id", sa.String(255), nullable=False),
        sa.Column("admin_state_up", sa.Boolean, nullable=False),
        *_meta(),
    )
    op.create_table(
        "ports",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("network_id", sa.String(64), sa.ForeignKey("networks.id"), nullable=False),
        sa.Column("device_owner", sa.String(255), nullable=False),
        sa.Column("device_id", sa.String(255), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("mac_address", sa.String(32), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("project_id", sa.String(255), nullable=False),
        sa.Column("admin_state_up", sa.Boolean, nullable=False),
        *_meta(),
    )
    op.create_index("ix_ports_network_id", "ports", ["network_id"])
    op.create_index("ix_ports_device_id", "ports", ["device_id"])
    op.create_table(
        "floatingips",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("floating_network_id", sa.String(64), sa.ForeignKey("networks.id"), nullable=False),
        sa.Column("floating_ip_address", sa.String(64), nullable=False),
        sa.Column("subnet_id", sa.String(64), sa.ForeignKey("subnets.id"), nullable=False),
        sa.Column("port_id", sa.String(64), nullable=True),
        sa.Column("fixed_ip_address", sa.String(64), nullable=True),
        sa.Column("router_id", sa.String(64), nullable=True),
        sa.Column("project_id", sa.String(255), nullable=False),
        *_meta(),
    )
    op.create_table(
        "hosts",
        sa.Column("name", sa.String(255), primary_key=True),
        sa.Column("mode", sa.String(32), nullable=False),
        sa.Column("created_at", sa.String(32), nullable=False),
        sa.Column("heartbeat_at", sa.String(32), nullable=True),
    )
    op.create_table(
        "ip_allocations",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("network_id", sa.String(64), sa.ForeignKey("networks.id"), nullable=False),
        sa.Column("ip_address", sa.String(64), nullable=False),
        sa.Column("subnet_id", sa.String(64), sa.ForeignKey("subnets.id"), nullable=False),
        sa.Column("port_id", sa.String(64), sa.ForeignKey("ports.id"), nullable=True),
        sa.Column("floatingip_id", sa.String(64), sa.ForeignKey("floatingips.id"), nullable=True),
        sa.Column("position", sa.Integer, nullable=False, server_default="0"),
        sa.UniqueConstraint("network_id", "ip_address", name="uq_ip_allocations_network_ip"),
        sa.CheckConstraint("(port_id IS NULL) <> (floatingip_id IS NULL)", name="ck_ip_allocations_one_holder"),
    )
    op.create_index("ix_ip_allocations_port_id", "ip_allocations", ["port_id"])
    op.create_index("ix_ip_allocations_floatingip_id", "ip_allocations", ["floatingip_id"])


def downgrade() -> None:
    for t in ("ip_allocations", "hosts", "floatingips", "ports", "routers", "subnets", "networks", "revision"):
        op.drop_table(t)

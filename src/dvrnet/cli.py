"""The one `dvrnet` command. Bad input: one line on stderr naming the field and the reason, exit 1."""
from __future__ import annotations

import functools
import os
import sys

import click

from .model.errors import DvrnetError

SCENARIOS = ("seed",)


def _one_line_errors(fn):
    @functools.wraps(fn)
    def wrapper(*a, **kw):
        try:
            return fn(*a, **kw)
        except DvrnetError as e:
            raise click.ClickException(str(e)) from None
    return wrapper


def load_scenario(name: str):
    if name == "seed":
        from .scenarios.seed import build
        return build()
    raise click.BadParameter(f"unknown scenario {name!r} (known: {', '.join(SCENARIOS)})", param_hint="--scenario")


@click.group()
@click.version_option(package_name="dvrnet")
def main() -> None:
    """dvrnet: a distributed virtual router for external networks with several subnets."""


@main.command()
@click.option("--scenario", type=click.Choice(SCENARIOS), default="seed", show_default=True,
              help="Built-in model to plan for.")
@click.option("--host", required=True, help="Host whose namespaces to plan.")
@click.option("--netns-prefix", default="", help="Prefix of every namespace name (per node in the lab).")
@_one_line_errors
def plan(scenario: str, host: str, netns_prefix: str) -> None:
    """Print the desired kernel state of every namespace on HOST (canonical text form)."""
    from .plan import PlanConfig, plan_host, render
    cloud = load_scenario(scenario)
    if host not in cloud.hosts:
        raise click.BadParameter(f"no host {host!r} in scenario {scenario} (hosts: {', '.join(sorted(cloud.hosts))})",
                                 param_hint="--host")
    click.echo(render(plan_host(cloud, host, PlanConfig(netns_prefix=netns_prefix))), nl=False)


@main.command()
@click.option("--bind", default="127.0.0.1:9696", show_default=True, help="HOST:PORT to listen on.")
@click.option("--db", default=None, help="SQLAlchemy URL (default: SQLite file in the state directory; postgresql://… for larger clouds).")
@click.option("--auth", type=click.Choice(["none", "token"]), default="none", show_default=True)
@click.option("--tokens", type=click.Path(dir_okay=False), default=None, help="JSON tokens file for --auth token.")
@click.option("--state-dir", default=os.environ.get("DVRNET_STATE_DIR", "/var/lib/dvrnet"), show_default=True)
@_one_line_errors
def server(bind: str, db: str | None, auth: str, tokens: str | None, state_dir: str) -> None:
    """Run the Neutron-compatible API server."""
    if auth == "token" and not tokens:
        raise click.BadParameter("--auth token needs --tokens FILE", param_hint="--tokens")
    from .api.serve import run
    run(bind=bind, db=db, auth=auth, state_dir=state_dir, tokens=tokens)


@main.command()
@click.option("--quick", is_flag=True, help="Smoke run (N=1,000), well under two minutes.")
def bench(quick: bool) -> None:
    """Benchmarks: ratios against Neutron's way and the raw floor, measured in one run."""
    from .bench.reconcile import main as reconcile_bench
    sys.exit(reconcile_bench(["--quick"] if quick else []))


@main.command()
def demo() -> None:
    """What `make demo` runs."""
    from .plan import PlanConfig, plan_host, render
    cloud = load_scenario("seed")
    click.echo("The lab (`dvrnet lab up` / `lab check`) is not built yet (issue: the lab).")
    click.echo("Meanwhile, this is the desired state dvrnet computes for compute1 in the seed scenario:\n")
    click.echo(render(plan_host(cloud, "compute1", PlanConfig())), nl=False)


if __name__ == "__main__":  # pragma: no cover
    main()

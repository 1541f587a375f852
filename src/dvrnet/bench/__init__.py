"""Benchmarks (not tests): print measured ratios against the raw floor and Neutron's way."""


def main(argv: list[str] | None = None) -> int:
    """`dvrnet bench [--quick]`: see `dvrnet.bench.suite`."""
    from .suite import main as _main
    return _main(argv)

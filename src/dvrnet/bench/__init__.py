"""Benchmarks (not tests): print measured ratios against the raw floor and Neutron's way."""

"""dvrnet: a distributed virtual router for Linux that handles external networks with several subnets.

Layers, imports pointing one way: model -> ipam -> plan -> reconcile -> kernel.
"""
__version__ = "0.1.0"

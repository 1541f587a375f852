"""IPAM with Neutron's semantics (pools, gateway, service types). Imports only `model`."""

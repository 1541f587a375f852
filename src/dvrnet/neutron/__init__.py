"""Neutron mode: dvrnet's node agent as the L3 agent of a real OpenStack Neutron.

- `translate`: the router dicts neutron-server sends (`sync_routers`, `get_ports_by_subnet`,
  `get_agent_gateway_port`) -> dvrnet model resources, one router at a time (pure);
- `rpc`: the L3 agent protocol over oslo.messaging (the calls to `q-l3-plugin`, `report_state`
  on `q-reports-plugin`, and the `l3_agent` consumer);
- `config`: the operator's neutron.conf / l3_agent.ini read with oslo.config;
- `source`: the agent's view of the cloud built from those routers, change by change;
- `agent`: `dvrnet neutron-agent`.

Only `rpc` and `config` import oslo.* (the optional extra `dvrnet[neutron]`); the translation
and the rest of dvrnet do not need it.
"""

"""dvrnet's control-plane server: Neutron v2.0 API (FastAPI), auth, change feed for agents.

Entry points: `app.create_app(db_url, auth, tokens)` and `serve.run(bind, db, auth, state_dir,
tokens)`; `codec.cloud_to_json` / `cloud_from_json` are shared with the agent.
"""

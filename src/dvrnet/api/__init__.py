"""dvrnet's control-plane server: Neutron v2.0 API (FastAPI), auth, change feed for agents.

Entry points: `app.create_app(db_url, auth, tokens)` and `serve.run(bind, db, auth, state_dir,
tokens)`. The agent codec (`Cloud` ⇄ JSON) lives in `dvrnet.wire`, shared with the agent.
"""

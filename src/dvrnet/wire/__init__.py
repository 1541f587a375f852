"""What the server and the agents exchange: the `Cloud` ⇄ JSON codec (`codec.py`).

Its own package so the agent decodes host views without importing the server (`dvrnet.api`,
FastAPI, SQLAlchemy): `python -X importtime -c 'import dvrnet.agent.loop'` lists none of them
(tests/unit/test_imports.py).
"""
from .codec import cloud_from_json, cloud_to_json

__all__ = ["cloud_from_json", "cloud_to_json"]

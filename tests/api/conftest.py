"""Fixtures for the server tests (helpers live in api_helpers.py)."""
from api_helpers import *
from api_helpers import client, db_url, token_app, tokens_file  # noqa: F401  # fixtures, found by pytest through this import

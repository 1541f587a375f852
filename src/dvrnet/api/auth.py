"""Who is asking: `Context(project_id, is_admin)` from the X-Auth-Token header.

- `auth="none"`: any token or none; every request is admin. The project is "" (resources are
  created with the body's project_id/tenant_id, if any).
- `auth="token"`: the tokens file is JSON `{"tokens": {"<token>": {"project_id": "...",
  "admin": bool}}}`; a missing or unknown token is 401. The file is read once at startup.
Unauthenticated paths: `GET /` (version discovery, as the client sends no token there).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from fastapi import Request

from .errors import NotAuthenticated

MODES = ("none", "token")


@dataclass(frozen=True)
class Context:
    project_id: str
    is_admin: bool


ADMIN = Context("", True)


def load_tokens(path: str) -> dict[str, Context]:
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise ValueError(f"tokens file {path}: {e}") from None
    tokens = data.get("tokens") if isinstance(data, dict) else None
    if not isinstance(tokens, dict):
        raise ValueError(f'tokens file {path}: expected {{"tokens": {{"<token>": {{"project_id": ..., "admin": ...}}}}}}')  # noqa: TRY004 - malformed input, callers catch ValueError
    out = {}
    for tok, spec in tokens.items():
        if not isinstance(spec, dict) or not isinstance(spec.get("project_id", ""), str) \
                or not isinstance(spec.get("admin", False), bool):
            raise ValueError(f"tokens file {path}: token entry {tok[:4]}…: project_id must be a string, admin a boolean")  # noqa: TRY004 - malformed input, callers catch ValueError
        out[tok] = Context(spec.get("project_id", ""), spec.get("admin", False))
    return out


class Auth:
    def __init__(self, mode: str = "none", tokens: str | None = None):
        if mode not in MODES:
            raise ValueError(f"auth mode {mode!r}: expected one of {', '.join(MODES)}")
        if mode == "token" and not tokens:
            raise ValueError("auth mode 'token' needs a tokens file")
        self.mode = mode
        self.tokens = load_tokens(tokens) if mode == "token" and tokens else {}

    def context(self, request: Request) -> Context:
        if self.mode == "none":
            return ADMIN
        tok = request.headers.get("x-auth-token")
        if not tok:
            raise NotAuthenticated("Authentication required: send a token in X-Auth-Token.")
        ctx = self.tokens.get(tok)
        if ctx is None:
            raise NotAuthenticated("The request you have made requires authentication: unknown token.")
        return ctx

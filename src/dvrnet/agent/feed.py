"""The agent's side of the change feed: register, then long-poll the host view.

Invariants: a failed request never raises out of `next_view`; it returns None after waiting the
current backoff (0.5 s doubling to `max_backoff`, 5 s by default, with jitter: a server
that comes back is noticed within seconds), so the caller keeps the data plane
as it is and simply asks again. A successful answer resets the backoff. `connect()` (the agent's
`--once`) and `fetch_once()` (inspection) try once, within `ONCE_TIMEOUT`, and raise DvrnetError
naming the server and the reason.
"""
from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass

import httpx

from ..model import Cloud
from ..model.errors import DvrnetError
from ..wire import cloud_from_json

log = logging.getLogger("dvrnet.agent")
ONCE_TIMEOUT = 8.0        # seconds a one-shot request (no long-poll) may take, connecting included


@dataclass
class View:
    revision: int
    cloud: Cloud


class Feed:
    def __init__(self, server: str, host: str, mode: str, token: str | None = None,
                 wait: float = 25.0, max_backoff: float = 5.0):
        self.server = server.rstrip("/")
        self.host = host
        self.mode = mode
        self.wait = wait
        self.max_backoff = max_backoff
        self.backoff = 0.0
        self.registered = False
        headers = {"X-Auth-Token": token} if token else {}
        self.http = httpx.Client(base_url=self.server, headers=headers, timeout=httpx.Timeout(wait + 10, connect=3))

    def close(self) -> None:
        self.http.close()

    def _failed(self, what: str, err: object) -> None:
        self.backoff = min(self.max_backoff, max(0.5, self.backoff * 2))
        delay = self.backoff * random.uniform(0.8, 1.2)
        log.warning("%s failed (%s); data plane left as it is, retrying in %.1f s", what, err, delay)
        time.sleep(delay)

    def _register(self, timeout: float | None = None) -> None:
        kw = {"timeout": timeout} if timeout is not None else {}
        r = self.http.post("/v2.0/dvrnet/hosts", json={"host": {"name": self.host, "mode": self.mode}}, **kw)
        r.raise_for_status()

    def register(self) -> bool:
        try:
            self._register()
        except (httpx.HTTPError, ValueError) as e:
            self._failed("registering with the server", e)
            return False
        self.registered = True
        self.backoff = 0.0
        return True

    def connect(self, timeout: float = ONCE_TIMEOUT) -> View:
        """Register and read the current view, one try each (no backoff, nothing logged): raises
        DvrnetError naming the server and the reason. What `dvrnet agent --once` does."""
        try:
            self._register(timeout)
        except httpx.HTTPStatusError as e:
            raise DvrnetError(f"the server at {self.server} refused to register {self.host}: "
                              f"{e.response.status_code} {e.response.text[:200]}") from None
        except httpx.HTTPError as e:
            raise DvrnetError(f"cannot reach the server at {self.server}: {e or type(e).__name__}") from None
        self.registered = True
        return self.fetch_once(timeout)

    def fetch_once(self, timeout: float = ONCE_TIMEOUT) -> View:
        """One request for the current view; raises DvrnetError with the reason on failure."""
        try:
            r = self.http.get(f"/v2.0/dvrnet/hosts/{self.host}/view", timeout=timeout)
            if r.status_code == 404:
                raise DvrnetError(f"host {self.host} is not known to the server at {self.server}")
            r.raise_for_status()
            body = r.json()
            return View(int(body["revision"]), cloud_from_json(body["cloud"]))
        except httpx.HTTPError as e:
            raise DvrnetError(f"cannot read the view of {self.host} from {self.server}: {e}") from None

    def next_view(self, since: int | None) -> View | None:
        """The host view newer than `since` (None: now), or None after a failure/backoff."""
        if not self.registered and not self.register():
            return None
        params = {"wait": self.wait} if since is not None else {}
        if since is not None:
            params["since"] = since
        try:
            r = self.http.get(f"/v2.0/dvrnet/hosts/{self.host}/view", params=params)
            if r.status_code == 404:
                self.registered = False
            r.raise_for_status()
            body = r.json()
            view = View(int(body["revision"]), cloud_from_json(body["cloud"]))
        except (httpx.HTTPError, ValueError, KeyError) as e:
            self._failed("fetching the host view", e)
            return None
        self.backoff = 0.0
        return view

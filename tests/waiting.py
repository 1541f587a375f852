"""The one way tests wait for a condition: poll it until it holds or a deadline passes.

    wait_for(lambda: os.path.exists(ready), 30, "the agent's first converged pass")

`pred()` is called every `step` seconds; its first truthy result is returned. An exception from
`pred` counts as "not yet" and is kept; on timeout an AssertionError names what was awaited and
the last result or exception. Fixed sleeps stay only where a test measures over a window of time
(traffic running across a change) or must let an unwanted event have its chance to happen.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(pred: Callable[[], T], timeout: float, what: str, step: float = 0.05) -> T:
    end = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            last = pred()
        except Exception as e:     # noqa: BLE001 - keep polling; reported on timeout
            last = e
        if last and not isinstance(last, Exception):
            return last            # type: ignore[return-value]  # truthy and not an exception: what pred returned
        if time.monotonic() >= end:
            raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")
        time.sleep(step)

"""Is a model or dataset hub reachable from here? Asked once per process, answered fast."""

from __future__ import annotations

import functools
import os
import socket
from urllib.parse import urlparse

PROBE_SECONDS = 3.0


def offline_reason() -> str | None:
    """None when the hub may be used; otherwise why not (an offline setting, no connection)."""
    for name in ("HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE"):
        if os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on"):
            return f"{name} is set"
    return probe_hub()


@functools.cache
def probe_hub() -> str | None:
    """None if the hub's host accepts a connection within a few seconds, else why not."""
    url = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((url.hostname or "", port), timeout=PROBE_SECONDS).close()
    except OSError as error:
        return f"{url.hostname} unreachable: {error.strerror or error}"
    return None

"""Where petscale keeps what it builds once: rebuilt models, tokenized splits."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """``$PETSCALE_CACHE``, else ``$XDG_CACHE_HOME/petscale``, else ``~/.cache/petscale``."""
    if env := os.environ.get("PETSCALE_CACHE"):
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "petscale"

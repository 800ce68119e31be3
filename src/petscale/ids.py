"""Trial ids: a stable hash of a trial's config, shared by trials, run folders and studies."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any


def trial_id(config: Mapping[str, Any]) -> str:
    """Stable id of a trial: first 16 hex digits of the sha256 of its canonical JSON."""
    canonical = json.dumps(config, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]

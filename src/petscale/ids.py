"""Trial ids: a stable hash of a trial's config, shared by trials, run folders and studies."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any

ID_DIGITS = 16
#: What every trial id looks like (ids read back from a store are checked against it).
TRIAL_ID_PATTERN = re.compile(f"[0-9a-f]{{{ID_DIGITS}}}")


def trial_id(config: Mapping[str, Any]) -> str:
    """Stable id of a trial: first 16 hex digits of the sha256 of its canonical JSON."""
    canonical = json.dumps(config, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:ID_DIGITS]

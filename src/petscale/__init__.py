"""petscale: parameter-efficient tuning at any model scale.

The API (``tune``, ``load``, ``count``, ``attach``) loads lazily, so ``petscale --help`` stays
fast: torch and transformers are imported on first use.
"""

from typing import Any

__version__ = "0.1.0"
__all__ = ["__version__", "attach", "count", "load", "tune"]


def __getattr__(name: str) -> Any:
    if name in ("attach", "count", "load", "tune"):
        from petscale import api

        return getattr(api, name)
    raise AttributeError(f"module 'petscale' has no attribute {name!r}")

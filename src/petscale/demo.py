"""`petscale demo`: the scaling study in miniature (the bundled spec ``studies/demo.yaml``).

It runs the spec's grid into a study store (resumable: a second demo runs nothing new), then
builds the report from the store. Everything is an ordinary study and an ordinary report, so
``petscale study status`` / ``export`` / ``report`` work on the demo's folder too.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

DEMO_SPEC = "studies/demo.yaml"


def demo_spec_path() -> Path:
    """The bundled demo spec (package data)."""
    return Path(str(resources.files("petscale").joinpath(DEMO_SPEC)))

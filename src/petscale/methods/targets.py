"""Resolving ``--targets``: role names (``q,v``) or a regular expression over module names."""

from __future__ import annotations

import re

from torch import nn

from petscale.errors import UserError
from petscale.zoo.structure import ROLES, Structure, in_out_features


def linear_targets(model: nn.Module, structure: Structure, targets: str) -> list[str]:
    """Names of the linear projections that ``targets`` selects.

    ``targets`` is a comma list of roles (``q,v``; ``attn_out,ffn_out``) or, when any item is
    not a role, one regular expression searched in each module's qualified name. Roles never
    pick cross-attention unless the ``cross_*`` roles are named.
    """
    names = [n for n in picked(model, structure, targets) if _linear(model.get_submodule(n))]
    if not names:
        raise UserError(
            f"--targets {targets!r} selects no linear projection in this "
            f"{structure.family} model; roles: {', '.join(ROLES)}"
        )
    return names


def _linear(module: nn.Module) -> bool:
    try:
        in_out_features(module)
    except UserError:
        return False
    return True


def picked(model: nn.Module, structure: Structure, targets: str) -> list[str]:
    """Names of the modules of any kind that ``targets`` names: its roles' modules in model
    order, or every module whose qualified name the regular expression matches."""
    items = [t.strip() for t in targets.split(",") if t.strip()]
    if not items:
        raise UserError("--targets is empty; give roles such as 'q,v' or a regular expression")
    if all(item in ROLES for item in items):
        return structure.modules(*items)
    try:
        pattern = re.compile(targets)
    except re.error as err:
        raise UserError(
            f"--targets {targets!r} is neither roles nor a valid regex: {err}"
        ) from None
    return [n for n, _ in model.named_modules() if n and pattern.search(n)]

"""Value checks that every reader of user input shares: the CLI's settings, study specs, run
folders, method options and the store's integrity checks. Torch-free, so that the CLI's
listings and a spec's validation load nothing heavy."""

from __future__ import annotations

import math
import types
import typing
from typing import Any

from petscale.errors import UserError

#: Whole numbers must fit a signed 64-bit integer: what torch takes as a seed or a size.
MAX_INT = 2**63
#: The largest useful learning rate: AdamW's useful rates are below 1 (prompt tuning's about
#: 0.3), and its first step overflows near 1e37.
MAX_LR = 10.0


def is_number(value: Any) -> bool:
    """An int or a float, not a bool (YAML reads ``yes`` as True; True is no number)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def is_real(value: Any) -> bool:
    """None, or a finite int or float (not a bool, not text): a stored real column's values."""
    return value is None or (type(value) in (int, float) and math.isfinite(value))


def is_count(value: Any) -> bool:
    """None, or a whole number >= 0 (not a bool): a stored count column's values."""
    return value is None or (type(value) is int and value >= 0)


def is_a(value: Any, kind: Any) -> bool:
    """isinstance for JSON and YAML values: a whole number is a fine float, a bool is no
    number; ``kind`` may be a type or a type hint (``int | None``)."""
    union = typing.get_origin(kind) in (typing.Union, types.UnionType)
    kinds = typing.get_args(kind) if union else (kind,)
    if value is None:
        return type(None) in kinds
    if isinstance(value, bool):
        return bool in kinds
    if float in kinds:
        kinds = (*kinds, int)
    return isinstance(value, tuple(typing.get_origin(k) or k for k in kinds if k is not None))


def finite(name: str, value: Any) -> None:
    """A number a user gave must be finite and fit a 64-bit integer or float (torch's range)."""
    if isinstance(value, float) and not math.isfinite(value):
        raise UserError(f"{name} must be a finite number, got {value}")
    if is_number(value) and isinstance(value, int) and abs(value) >= MAX_INT:
        raise UserError(f"{name} {value} is too large; use a number below 2**63")


def at_least(name: str, value: Any, minimum: int) -> None:
    """A whole-number setting's lower bound (1: "must be positive")."""
    if value < minimum:
        what = "must be positive" if minimum == 1 else f"must be >= {minimum}"
        raise UserError(f"{name} {what}, got {value}")


def learning_rate(name: str, value: float) -> None:
    """A learning rate is positive and below ``MAX_LR`` (``tune --lr`` and a spec's ``lr``)."""
    finite(name, value)
    if not value > 0:
        raise UserError(f"{name}: the learning rate must be > 0, got {value!r}")
    if value > MAX_LR:
        raise UserError(f"{name}: {value!r} is far above any useful rate; use at most {MAX_LR}")


def one_of(name: str, value: Any, choices: tuple[str, ...]) -> None:
    """A value picked from a fixed set (an activation, an init, a pooling ...)."""
    if value not in choices:
        raise UserError(f"{name} must be one of {', '.join(choices)}, got {value!r}")


def within(name: str, value: float, low: float, high: float) -> None:
    """A number in ``[low, high]`` (a share, a ratio, a decay)."""
    finite(name, value)
    if not low <= value <= high:
        raise UserError(f"{name} must be between {low:g} and {high:g}, got {value}")

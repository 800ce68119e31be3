"""Helpers every loader shares: seeded splits, label indexing and readable label words."""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Sequence
from typing import TypeVar

from petscale.errors import UserError
from petscale.tasks.base import Example

DEV_FRACTION = 0.1  # the dev split petscale carves out of train when a source has none

T = TypeVar("T")


def seeded_split(
    examples: Sequence[T], fractions: Sequence[float], seed: int, names: Sequence[str]
) -> dict[str, list[T]]:
    """Shuffle with ``seed`` and cut into ``names``; the last split takes the remainder."""
    order = list(examples)
    random.Random(seed).shuffle(order)
    splits: dict[str, list[T]] = {}
    start = 0
    for name, fraction in zip(names[:-1], fractions, strict=True):
        end = start + round(len(order) * fraction)
        splits[name] = order[start:end]
        start = end
    splits[names[-1]] = order[start:]
    return splits


def carve_dev(train: Sequence[T], seed: int) -> tuple[list[T], list[T]]:
    """A seeded 10% dev split out of ``train`` (at least one example): (train, dev)."""
    n_dev = max(1, round(len(train) * DEV_FRACTION)) if len(train) > 1 else 0
    order = list(train)
    random.Random(seed).shuffle(order)
    return order[n_dev:], order[:n_dev]


def index_labels(
    rows: dict[str, list[tuple[str, Example, str]]], labels: Sequence[str]
) -> dict[str, list[Example]]:
    """Turn (label name, example, where) rows into examples with label indices.

    ``where`` names the file and line, for the error when a label is not in ``labels``.
    """
    index = {name: i for i, name in enumerate(labels)}
    out: dict[str, list[Example]] = {}
    for split, items in rows.items():
        out[split] = []
        for name, example, where in items:
            if name not in index:
                raise UserError(
                    f"{where}: label {name!r} never appears in train; train labels: "
                    f"{', '.join(labels[:20])}{' ...' if len(labels) > 20 else ''}"
                )
            out[split].append({**example, "label": index[name]})
    return out


def sorted_labels(names: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted(set(names)))


def label_word(name: str) -> str:
    """A readable word or phrase for a class name: "card_arrival" -> "card arrival",
    "AcademicJournal" -> "academic journal"."""
    spaced = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", name)
    return " ".join(re.split(r"[_.\s]+", spaced)).strip().lower() or name

"""Every bundled model x every method at its defaults and a few sizes: the exact trainable
counts on the meta device, against a committed table (tests/data/counts_table.json).

The table was written before the one-schema refactor (issue 13) and must stay identical:
regenerate it only for a deliberate change of what a method trains, with
``python tests/test_counts_table.py --write``.
"""

from __future__ import annotations

import functools
import json
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import petscale
import petscale.api
from petscale.errors import UserError
from petscale.zoo.registry import entries

TABLE = Path(__file__).parent / "data" / "counts_table.json"

#: row name -> (method, options). The table was written when only APET took ``match``: the
#: other ``match`` rows then counted with LoRA's default count as their budget, as a study's
#: ``match: lora`` did; the sizing step now takes ``match`` for every sized method, alike.
ROWS: dict[str, tuple[str, dict[str, Any]]] = {
    "full": ("full", {}),
    "probe": ("probe", {}),
    "lora": ("lora", {}),
    "lora rank=4": ("lora", {"rank": 4}),
    "prompt": ("prompt", {}),
    "prompt length=20": ("prompt", {"length": 20}),
    "bitfit": ("bitfit", {}),
    "adapter": ("adapter", {}),
    "adapter bottleneck=16": ("adapter", {"bottleneck": 16}),
    "apet": ("apet", {}),
    "apet budget=10000 adjacent": ("apet", {"budget": 10_000, "pattern": "adjacent"}),
    "apet budget=10000 discrete": ("apet", {"budget": 10_000, "pattern": "discrete"}),
    "apet match=lora": ("apet", {"match": "lora"}),
    "prompt match=lora": ("prompt", {"match": "lora"}),
    "bitfit match=lora": ("bitfit", {"match": "lora"}),
    "adapter match=lora": ("adapter", {"match": "lora"}),
}


def _count(model: str, method: str, options: dict[str, Any]) -> dict[str, Any]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # as the command line counts: its errors name flags (the API's name keywords)
        return petscale.api.count.__wrapped__(model=model, method=method, **options)


def row(model: str, name: str) -> dict[str, Any]:
    """What counting says for one model and row: the counts, or the one-line error."""
    method, options = ROWS[name]
    try:
        result = _count(model, method, options)
    except UserError as e:
        return {"error": str(e)}
    # APET's budget and match are how K was asked for; K itself is its trainable count.
    asked = ("budget", "match") if method == "apet" else ()
    return {
        "trainable_params": result["trainable_params"],
        "head_params": result["head_params"],
        "total_params": result["total_params"],
        "options": {k: v for k, v in result["options"].items() if k not in asked},
    }


def table() -> dict[str, dict[str, Any]]:
    return {model: {name: row(model, name) for name in ROWS} for model in sorted(entries())}


def cached_meta_models() -> pytest.MonkeyPatch:
    """Counting builds each meta model once (building dominates the time); counts detach
    what they attach, and a leftover would show in the totals of the next row."""
    patch = pytest.MonkeyPatch()
    patch.setattr(petscale.api, "meta_model", functools.cache(petscale.api.meta_model))
    return patch


@pytest.fixture(scope="module", autouse=True)
def _cache() -> Iterator[None]:
    patch = cached_meta_models()
    yield
    patch.undo()


EXPECTED = json.loads(TABLE.read_text()) if TABLE.is_file() else {}


def test_the_table_covers_every_model_and_row() -> None:
    assert sorted(EXPECTED) == sorted(entries())
    assert all(sorted(rows) == sorted(ROWS) for rows in EXPECTED.values())


@pytest.mark.parametrize("model", sorted(entries()))
def test_counts_unchanged(model: str) -> None:
    for name in ROWS:
        assert row(model, name) == EXPECTED[model][name], (model, name)


if __name__ == "__main__" and sys.argv[1:] == ["--write"]:
    cached_meta_models()
    TABLE.write_text(json.dumps(table(), indent=1, sort_keys=True) + "\n")

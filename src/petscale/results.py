"""What a trial returns: one ``TrialResult``, from which every reader's fields are derived.

The store's result columns (``COLUMNS``), the integrity checks of a stored row, the fields an
experiment tracker logs at the end, the export's columns and the analysis table all come from
the field metadata below, so a new result field is one edit here.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from petscale.checks import is_number


def _field(
    column: str | None = None,
    *,
    evaluation: bool = False,
    final: bool = False,
    required: bool = False,
    default: Any = dataclasses.MISSING,
) -> Any:
    """A result field and who reads it.

    ``column``: the SQL type of its own column in the store (else it lives in the result's JSON
    only); ``evaluation``: in the JSON only, but exported and read by the analyses (floors and
    intervals); ``final``: logged to trackers at the end; ``required``: a done trial must have
    it as a finite number.
    """
    meta = {"column": column, "evaluation": evaluation, "final": final, "required": required}
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class TrialResult:
    """One trial's settings as run (after sizing), counts, scores and costs."""

    model: str = _field()
    task: str = _field()
    method: str = _field()
    options: Mapping[str, Any] = _field()  # the method's config, sized (rank, K, ...)
    head: str = _field()
    pooling: str = _field()  # what the head read: cls or mean (resolved from auto)
    pretrained: bool = _field()  # the weights came from the checkpoint
    trainable_params: int = _field("INTEGER", final=True)
    head_params: int = _field("INTEGER", final=True)
    total_params: int = _field("INTEGER", final=True)
    steps: int = _field()
    batch_size: int = _field()
    eval_limit: int = _field()
    lr: float = _field()
    schedule: str = _field()
    precision: str = _field()
    seed: int = _field()
    metric: str = _field("TEXT")
    random_guess: float | None = _field("REAL")
    dev_examples: int = _field(evaluation=True)
    test_examples: int | None = _field(evaluation=True)  # None: the task has no test split
    dev_majority: float | None = _field(evaluation=True)  # None: not a classification task
    test_majority: float | None = _field(evaluation=True)
    dev_score: float = _field("REAL", required=True)
    test_score: float | None = _field("REAL", final=True)
    curve: list[list[float]] = _field()  # [step, dev score] pairs
    best_step: int | None = _field()  # keep_best: the evaluation whose tensors were kept
    seconds: float = _field("REAL", final=True, required=True)
    step_seconds: float = _field(final=True)
    peak_memory_mb: float = _field("REAL", final=True)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: what ``tune --json`` prints, the API returns and the store keeps."""
        out = {f.name: getattr(self, f.name) for f in FIELDS}
        return {**out, "options": dict(self.options), "curve": [list(p) for p in self.curve]}


FIELDS: tuple[dataclasses.Field, ...] = dataclasses.fields(TrialResult)
#: Result fields copied into their own store columns, name -> SQL type.
COLUMNS: dict[str, str] = {f.name: f.metadata["column"] for f in FIELDS if f.metadata["column"]}
#: Fields kept in the result's JSON only, which the export and the analyses read.
EVALUATION_KEYS = tuple(f.name for f in FIELDS if f.metadata["evaluation"])
#: Fields logged to experiment trackers once, at the end.
FINAL_KEYS = tuple(f.name for f in FIELDS if f.metadata["final"])
#: Fields a done trial must hold as finite numbers.
REQUIRED_KEYS = tuple(f.name for f in FIELDS if f.metadata["required"])
#: Columns of each SQL kind.
REAL_COLUMNS = tuple(k for k, kind in COLUMNS.items() if kind == "REAL")
COUNT_COLUMNS = tuple(k for k, kind in COLUMNS.items() if kind == "INTEGER")
#: Numeric fields read from a result's JSON by the analyses.
NUMERIC_KEYS = (*REAL_COLUMNS, *EVALUATION_KEYS)


def missing_required(result: Mapping[str, Any]) -> str | None:
    """The first required field that is not a finite number, with its value; None when all are."""
    for key in REQUIRED_KEYS:
        value = result.get(key)
        if not (is_number(value) and math.isfinite(value)):
            return f"{key} {value!r}"
    return None

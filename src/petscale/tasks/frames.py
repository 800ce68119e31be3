"""In-memory data as a task: a pandas DataFrame, a ``datasets.Dataset`` or ``DatasetDict``, or
a mapping of split names to either.

A trial is a pure function of its config, and its config is JSON, so the data are written once
as JSON Lines files (``train.jsonl``, ``dev.jsonl``, ``test.jsonl``) under the cache, in a folder
named by the hash of their content: the same data give the same folder, the same config and the
same trial id, and the folder reads back as any user data folder does (``tasks.files``).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from petscale.errors import UserError
from petscale.paths import cache_dir

#: Split names as datasets and pandas users write them -> petscale's file names.
SPLITS = {"train": "train", "validation": "dev", "valid": "dev", "dev": "dev", "test": "test"}


def is_frame(data: Any) -> bool:
    """Whether ``data`` is in-memory data (not a task name or path)."""
    return not isinstance(data, str | Path)


def frame_folder(data: Any) -> Path:
    """The folder of JSON Lines files that holds ``data``, written once (see the module)."""
    splits = _splits(data)
    lines = {split: [_line(row, split) for row in rows] for split, rows in splits.items()}
    digest = hashlib.sha256(json.dumps(lines, sort_keys=True).encode()).hexdigest()[:16]
    folder = cache_dir() / "frames" / digest
    if folder.is_dir():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{digest}.", dir=folder.parent))
    try:
        for split, rows in lines.items():
            (staging / f"{split}.jsonl").write_text("".join(f"{r}\n" for r in rows))
        staging.rename(folder)
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
        if not folder.is_dir():  # another process may have written the same data first
            raise
    return folder


def _splits(data: Any) -> dict[str, list[Mapping[str, Any]]]:
    if isinstance(data, Mapping):  # a DatasetDict, or {"train": frame, "test": frame}
        out = {}
        for name, part in data.items():
            if name not in SPLITS:
                raise UserError(
                    f"task data: unknown split {name!r}; name them {', '.join(sorted(SPLITS))}"
                )
            out[SPLITS[name]] = _rows(part)
        if "train" not in out:
            raise UserError("task data: no train split; give {'train': ..., 'test': ...}")
        return out
    return {"train": _rows(data)}


def _rows(part: Any) -> list[Mapping[str, Any]]:
    if hasattr(part, "to_dict") and hasattr(part, "columns"):  # a pandas DataFrame
        return part.to_dict("records")
    if hasattr(part, "to_list") and hasattr(part, "column_names"):  # a datasets.Dataset
        return part.to_list()
    raise UserError(
        f"task: expected a task name, a path, a pandas DataFrame or a datasets Dataset, got "
        f"{type(part).__name__}"
    )


def _line(row: Mapping[str, Any], split: str) -> str:
    try:
        return json.dumps(dict(row), default=_plain, allow_nan=True)
    except TypeError as error:
        raise UserError(f"task data ({split}): a value is not text or a number: {error}") from None


def _plain(value: Any) -> Any:
    # numpy scalars (a DataFrame's int64 labels) as Python numbers
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON")

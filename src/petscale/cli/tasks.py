"""``petscale tasks``: each task's type, labels, metric, baselines, sizes and availability."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from petscale.cli import options as o
from petscale.cli.table import print_table
from petscale.errors import UserError
from petscale.tasks import TASKS, get_task
from petscale.tasks.hub import HUB_TASKS

DataDir = Annotated[
    Path | None,
    typer.Option(help="Folder with local copies of the hub tasks (save_to_disk or files)."),
]


def task_rows(data_dir: Path | None = None) -> list[dict[str, Any]]:
    """One row per registered task; sizes and the majority score only where the data is here."""
    rows = []
    for name in TASKS:
        task = get_task(name, data_dir=data_dir) if name in HUB_TASKS else get_task(name)
        spec = task.spec
        reason = task.unavailable_reason()
        sizes, majority = None, None
        if reason is None and not task.remote:  # never download just to count examples
            try:
                sizes, majority = task.sizes(), task.majority_score()
            except UserError as error:
                reason = str(error)
        rows.append(
            {
                "name": name,
                "type": spec.type,
                "kind": spec.kind,
                "labels": spec.num_labels or None,
                "inputs": list(spec.input_fields),
                "metrics": list(spec.metrics),
                "random_guess": spec.random_guess(),
                "majority": majority,
                "sizes": sizes,
                "available": reason is None,
                "why_not": reason,
                "source": spec.source,
            }
        )
    return rows


def _score(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def tasks_command(json_output: o.Json = False, data_dir: DataDir = None) -> None:
    """List the tasks: type, labels, metric, random-guess and majority scores, sizes, and
    whether the data is available here."""
    rows = task_rows(data_dir)
    if json_output:
        print(json.dumps(rows))
        return
    print_table(
        ("name", "type", "labels", "metric", "random", "majority", "train/dev/test", "here"),
        [
            (
                row["name"],
                row["type"],
                str(row["labels"] or "-"),
                row["metrics"][0],
                _score(row["random_guess"]),
                _score(row["majority"]),
                _sizes(row["sizes"]),
                "yes"
                if row["available"] and row["sizes"]
                else "via hub"
                if row["available"]
                else "no",
            )
            for row in rows
        ],
    )
    if any(not row["available"] for row in rows):
        print(
            "Tasks marked no need a local copy: --data-dir DIR, where DIR/<task> is a `datasets` "
            "save_to_disk folder or train/validation/test .jsonl/.csv/.tsv files.",
            file=sys.stderr,
        )


def _sizes(sizes: dict[str, int] | None) -> str:
    return "/".join(f"{sizes.get(s, 0):,}" for s in ("train", "dev", "test")) if sizes else "-"

"""Tasks by name: the study's tasks, the offline ones, and the user's own files."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from petscale.errors import UserError
from petscale.tasks import rotten_tomatoes
from petscale.tasks.base import Example, Splits, Task, TaskSpec
from petscale.tasks.files import SUFFIXES, file_task
from petscale.tasks.hub import HUB_TASKS, hub_task
from petscale.tasks.offline import OFFLINE_TASKS

#: name -> factory (keyword ``seed``: the seed of splits petscale makes itself); data loads lazily.
TASKS: dict[str, Callable[..., Task]] = {
    "rotten_tomatoes": rotten_tomatoes.task,
    **OFFLINE_TASKS,
    **{name: lambda name=name, **options: hub_task(name, **options) for name in HUB_TASKS},
}

DEFAULT_TASK = "rotten_tomatoes"


def get_task(
    name: str,
    *,
    data_dir: str | Path | None = None,
    text_field: str | None = None,
    text_pair_field: str | None = None,
    label_field: str | None = None,
    seed: int = 0,
    encoding: str = "utf-8",
) -> Task:
    """A task by registry name, or the user's data by path (a file or a train/dev/test folder).

    ``data_dir`` points a hub task at a local copy; the ``*_field`` options name the columns of
    the user's files (defaults text and label) or of a hub task's local copy; ``encoding`` is the
    files' text encoding; ``seed`` seeds the splits petscale makes (dev out of train, and the
    splits of packages that ship none).
    """
    fields = {"text_field": text_field, "text_pair_field": text_pair_field}
    if data_dir is not None and not Path(data_dir).is_dir():
        raise UserError(f"--data-dir {data_dir} is not a folder; give a hub task's local copy")
    if name in HUB_TASKS:
        return hub_task(
            name, data_dir, **fields, label_field=label_field, seed=seed, encoding=encoding
        )
    if name in TASKS:
        given = [
            k for k, v in {**fields, "label_field": label_field, "data_dir": data_dir}.items() if v
        ]
        if given:
            raise UserError(
                f"task {name!r} ships with its data; {', '.join(given)} applies only to the "
                "study's hub tasks and to your own files"
            )
        return TASKS[name](seed=seed)
    if Path(name).exists() or Path(name).suffix.lower() in SUFFIXES:
        if data_dir is not None:
            raise UserError(f"--data-dir applies to the study's hub tasks; {name} is your data")
        return file_task(
            name, text_field or "text", text_pair_field, label_field or "label", seed, encoding
        )
    raise UserError(
        f"unknown task {name!r}; known tasks: {', '.join(sorted(TASKS))}; "
        "or give the path of a .csv/.tsv/.jsonl file or of a folder with train/dev/test files"
    )


__all__ = ["DEFAULT_TASK", "TASKS", "Example", "Splits", "Task", "TaskSpec", "get_task"]

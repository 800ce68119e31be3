"""The study's 11 tasks through Hugging Face ``datasets``: from the hub, or from a local copy.

A local copy is a ``save_to_disk`` folder or train/validation/test files (.jsonl, .csv, .tsv)
with the hub's column names, in ``data_dir`` or ``data_dir/<task name>``. The hub is only
tried when it answers within a few seconds, so an offline machine gets one clear line.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from petscale.errors import UserError
from petscale.hub import offline_reason
from petscale.tasks.base import Example, Splits, Task, TaskSpec
from petscale.tasks.build import carve_dev
from petscale.tasks.files import SUFFIXES, read_table

DATA_DIR_ENV = "PETSCALE_DATA_DIR"  # the default --data-dir


@dataclass(frozen=True)
class HubSource:
    spec: TaskSpec
    path: str  # hub dataset id
    config: str | None
    target: str  # the label column (classification) or the answer column (generation)
    # task split -> the hub's split name; None where the hub has no labelled split
    splits: dict[str, str | None] = field(
        default_factory=lambda: {"train": "train", "dev": "validation", "test": None}
    )


def _spec(
    name: str, type_: str, fields: Sequence[str], labels: Sequence[str] = (), **kw
) -> TaskSpec:
    return TaskSpec(
        name=name,
        type=type_,
        kind="classification" if labels else "generation",
        labels=tuple(labels),
        label_words=tuple(label.replace("_", " ") for label in labels),
        pair=len(fields) == 2,
        input_fields=tuple(fields),
        **kw,
    )


_GLUE = "nyu-mll/glue"
_SENTIMENT = ("negative", "positive")
_NLI2 = ("entailment", "not_entailment")
_ALL_SPLITS = {"train": "train", "dev": "validation", "test": "test"}

HUB_TASKS: dict[str, HubSource] = {
    s.spec.name: s
    for s in [
        HubSource(
            _spec("sst2", "sentiment", ["sentence"], _SENTIMENT, description="SST-2 (GLUE)"),
            _GLUE,
            "sst2",
            "label",
        ),
        HubSource(
            _spec(
                "rotten_tomatoes_hf",
                "sentiment",
                ["text"],
                _SENTIMENT,
                description="Rotten Tomatoes, the hub's official split",
            ),
            "cornell-movie-review-data/rotten_tomatoes",
            None,
            "label",
            _ALL_SPLITS,
        ),
        HubSource(
            _spec(
                "imdb",
                "sentiment",
                ["text"],
                _SENTIMENT,
                description="IMDB reviews; dev is a seeded 10% of train",
            ),
            "stanfordnlp/imdb",
            None,
            "label",
            {"train": "train", "dev": None, "test": "test"},
        ),
        HubSource(
            _spec(
                "mnli",
                "nli",
                ["premise", "hypothesis"],
                ("entailment", "neutral", "contradiction"),
                description="MultiNLI (GLUE); dev matched, test = dev mismatched",
            ),
            _GLUE,
            "mnli",
            "label",
            {"train": "train", "dev": "validation_matched", "test": "validation_mismatched"},
        ),
        HubSource(
            _spec("qnli", "nli", ["question", "sentence"], _NLI2, description="QNLI (GLUE)"),
            _GLUE,
            "qnli",
            "label",
        ),
        HubSource(
            _spec("rte", "nli", ["sentence1", "sentence2"], _NLI2, description="RTE (GLUE)"),
            _GLUE,
            "rte",
            "label",
        ),
        HubSource(
            _spec(
                "mrpc",
                "paraphrase",
                ["sentence1", "sentence2"],
                ("not_equivalent", "equivalent"),
                metrics=("accuracy", "f1"),
                description="MRPC (GLUE)",
            ),
            _GLUE,
            "mrpc",
            "label",
        ),
        HubSource(
            _spec(
                "qqp",
                "paraphrase",
                ["question1", "question2"],
                ("not_duplicate", "duplicate"),
                metrics=("accuracy", "f1"),
                description="QQP (GLUE)",
            ),
            _GLUE,
            "qqp",
            "label",
        ),
        HubSource(
            _spec(
                "nq_open",
                "qa",
                ["question"],
                metrics=("token_f1", "exact_match"),
                description="NQ-Open; answers are lists of acceptable strings",
            ),
            "google-research-datasets/nq_open",
            None,
            "answer",
        ),
        HubSource(
            _spec(
                "samsum",
                "summarization",
                ["dialogue"],
                metrics=("rouge_l",),
                description="SAMSum dialogue summaries",
            ),
            "Samsung/samsum",
            None,
            "summary",
            _ALL_SPLITS,
        ),
        HubSource(
            _spec(
                "multi_news",
                "summarization",
                ["document"],
                metrics=("rouge_l",),
                description="Multi-News multi-document summaries",
            ),
            "alexfabbri/multi_news",
            None,
            "summary",
            _ALL_SPLITS,
        ),
    ]
}


@dataclass(frozen=True)
class Columns:
    """The columns to read: the hub's names unless the user overrides them."""

    text: str
    pair: str | None
    target: str


def _local_copy(name: str, data_dir: Path | None) -> Path | None:
    """The folder holding a local copy of ``name``, if ``data_dir`` has one."""
    if data_dir is None:
        return None
    for folder in (data_dir / name, data_dir):
        if (folder / "dataset_dict.json").is_file() or any(
            (folder / f"train{suffix}").is_file() for suffix in SUFFIXES
        ):
            return folder
    return None


def _split_rows(folder: Path, split: str, encoding: str) -> tuple[list[dict], list[str]] | None:
    """Rows of one split of a local copy, with a 'file line N' note for each, or None."""
    if (folder / "dataset_dict.json").is_file():
        from datasets import load_from_disk
        from datasets.features.features import require_decoding

        dataset = load_from_disk(str(folder))
        if split not in dataset:
            return None
        part = dataset[split]
        # Columns that decode (images, audio, ...) hold no text or label; they are dropped
        # unread: decoding would open whatever files or URLs their rows name.
        decoded = [k for k, f in part.features.items() if require_decoding(f)]
        rows = list(part.remove_columns(decoded))
        return rows, [f"{folder} split {split} row {i}" for i in range(len(rows))]
    for suffix in SUFFIXES:
        if (folder / f"{split}{suffix}").is_file():
            table = read_table(folder / f"{split}{suffix}", encoding)
            return table.rows, [table.where(i) for i in range(len(table.rows))]
    return None


def _check_columns(spec: TaskSpec, columns: Columns, present: Sequence[str], where: str) -> None:
    if spec.pair and columns.pair is None:
        raise UserError(
            f"task {spec.name!r} is a text-pair task and needs two input fields "
            f"({', '.join(spec.input_fields)}); only {columns.text!r} was given"
        )
    for column in (columns.text, columns.pair, columns.target):
        if column is not None and column not in present:
            raise UserError(
                f"{where}: no column {column!r} for task {spec.name!r}; "
                f"its columns are: {', '.join(present)}"
            )


def _example(spec: TaskSpec, columns: Columns, row: dict, where: str) -> Example | None:
    """One example, or None for an unlabelled row (GLUE's hidden test labels are -1)."""
    example: Example = {"text": str(row[columns.text])}
    if columns.pair is not None:
        example["text_pair"] = str(row[columns.pair])
    value = row[columns.target]
    if spec.kind == "generation":
        answers = [str(a) for a in value] if isinstance(value, list) else [str(value)]
        example["target"], example["references"] = answers[0], answers
        return example
    if str(value).strip().lstrip("-").isdigit():
        label = int(value)
        if label == -1:
            return None
        if not 0 <= label < spec.num_labels:
            raise UserError(f"{where}: label {label} is out of range 0..{spec.num_labels - 1}")
    elif str(value) in spec.labels:
        label = spec.labels.index(str(value))
    else:
        raise UserError(
            f"{where}: label {value!r} is not one of task {spec.name!r}'s labels: "
            f"{', '.join(spec.labels)} (or their indices)"
        )
    example["label"] = label
    return example


def _load_local(
    source: HubSource, folder: Path, columns: Columns, seed: int, encoding: str
) -> Splits:
    splits: Splits = {}
    for split, hub_split in source.splits.items():
        # A local copy may name dev "dev" or "validation"; the hub's own name comes first.
        names = [hub_split] if hub_split else []
        names += {"dev": ["validation", "dev"], "test": ["test"]}.get(split, [])
        found = next(
            (rows for n in dict.fromkeys(names) if (rows := _split_rows(folder, n, encoding))),
            None,
        )
        if found is None:
            continue
        rows, wheres = found
        _check_columns(
            source.spec,
            columns,
            list(rows[0]) if rows else [],
            wheres[0] if wheres else str(folder),
        )
        examples = [_example(source.spec, columns, r, w) for r, w in zip(rows, wheres, strict=True)]
        splits[split] = [e for e in examples if e is not None]
    if "train" not in splits:
        raise UserError(f"{folder}: no train split for task {source.spec.name!r}")
    if not splits.get("dev"):
        splits["train"], splits["dev"] = carve_dev(splits["train"], seed)
    return {split: examples for split, examples in splits.items() if examples}


def _no_data_message(source: HubSource, why: str) -> str:
    columns = ", ".join((*source.spec.input_fields, source.target))
    return (
        f"task {source.spec.name!r}: no dataset hub ({why}) and no local copy; point at one "
        f"with --data-dir DIR (or ${DATA_DIR_ENV}), where DIR or DIR/{source.spec.name} is a "
        f"`datasets` save_to_disk folder or holds train/validation/test .jsonl/.csv/.tsv files "
        f"with columns {columns}"
    )


def _load_hub(source: HubSource, columns: Columns, seed: int) -> Splits:
    from datasets import load_dataset

    try:
        dataset = load_dataset(source.path, source.config)
    except Exception as error:  # network, auth and format errors all end the same way here
        raise UserError(
            _no_data_message(source, f"loading {source.path} failed: {error}")
        ) from None
    splits: Splits = {}
    for split, hub_split in source.splits.items():
        if hub_split and hub_split in dataset:
            where = f"{source.path} {hub_split}"
            rows = [_example(source.spec, columns, r, where) for r in dataset[hub_split]]
            splits[split] = [e for e in rows if e is not None]
    if not splits.get("dev"):
        splits["train"], splits["dev"] = carve_dev(splits["train"], seed)
    return splits


def hub_task(
    name: str,
    data_dir: str | Path | None = None,
    text_field: str | None = None,
    text_pair_field: str | None = None,
    label_field: str | None = None,
    seed: int = 0,
    encoding: str = "utf-8",
) -> Task:
    """A study task; ``*_field`` rename the columns of a local copy whose names differ."""
    source = HUB_TASKS[name]
    fields = source.spec.input_fields
    columns = Columns(
        text=text_field or fields[0],
        pair=text_pair_field or (fields[1] if source.spec.pair and not text_field else None),
        target=label_field or source.target,
    )
    data_dir = data_dir or os.environ.get(DATA_DIR_ENV) or None
    folder = _local_copy(name, Path(data_dir) if data_dir else None)

    def availability() -> str | None:
        if folder is not None:
            return None
        why = offline_reason()
        return _no_data_message(source, why) if why else None

    def load() -> Splits:
        if folder is not None:
            return _load_local(source, folder, columns, seed, encoding)
        why = offline_reason()
        if why:
            raise UserError(_no_data_message(source, why))
        return _load_hub(source, columns, seed)

    hub_name = source.path + (f"/{source.config}" if source.config else "")
    origin = f"local copy {folder}" if folder else f"hub {hub_name}"
    return Task(
        spec=replace(source.spec, source=origin),
        loader=load,
        availability=availability,
        remote=folder is None,
    )

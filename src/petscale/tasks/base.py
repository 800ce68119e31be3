"""What a task is: its spec (fields, labels, metric, random-guess score) and its splits."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypedDict

from petscale.errors import UserError


class Example(TypedDict, total=False):
    """One example. Classification tasks set ``label`` (an index into ``TaskSpec.labels``);
    generation tasks (QA, summarization) set ``target``."""

    text: str
    text_pair: str
    label: int
    target: str
    references: list[str]  # every acceptable answer (NQ-Open lists several); target is the first


Splits = dict[str, list[Example]]  # "train", "dev" and (where there is one) "test"


@dataclass(frozen=True)
class TaskSpec:
    name: str
    type: str  # sentiment, nli, paraphrase, qa, summarization, topic, intent, ...
    kind: Literal["classification", "generation"]
    labels: tuple[str, ...] = ()  # class names, in label-index order
    label_words: tuple[str, ...] = ()  # the word a generative model answers with, per class
    metrics: tuple[str, ...] = ("accuracy",)  # the first is the main one
    pair: bool = False  # a (text, text_pair) task
    input_fields: tuple[str, ...] = ("text",)  # the source's column(s) that become text/text_pair
    description: str = ""
    source: str = ""  # where the data comes from, for `petscale tasks`

    @property
    def metric(self) -> str:
        return self.metrics[0]

    @property
    def num_labels(self) -> int:
        return len(self.labels)

    def to_json(self) -> dict[str, Any]:
        """What a run folder keeps (``task.json``), so that it loads without the data."""
        return {f.name: _listed(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any], where: str) -> TaskSpec:
        """A spec read back from ``task.json``, every field of its kind (``where`` names the
        file in the error)."""
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            value = data.get(f.name, f.default)
            if f.name in _TEXT_TUPLES:
                if not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
                    raise UserError(f"{where}: {f.name!r} must be a list of names, got {value!r}")
                value = tuple(value)
            elif not isinstance(value, bool if f.name == "pair" else str):
                raise UserError(f"{where}: {f.name!r} is {value!r}, not of its kind")
            values[f.name] = value
        if values["kind"] not in ("classification", "generation"):
            raise UserError(f"{where}: 'kind' must be classification or generation")
        if not values["metrics"]:
            raise UserError(f"{where}: 'metrics' is empty; name the task's metric")
        return cls(**values)

    def random_guess(self) -> float | None:
        """Expected main-metric score of guessing a class uniformly at random."""
        if self.kind == "classification" and self.metric == "accuracy":
            return 1.0 / self.num_labels
        return None


@dataclass(frozen=True)
class TaskOptions:
    """How a task's data are read (``get_task``'s keywords): the columns and text encoding of
    the user's files, a hub task's local copy. None: the default."""

    data_dir: str | None = None  # a hub task's local copy (a folder)
    text_field: str | None = None  # the text's column (default text)
    text_pair_field: str | None = None  # a pair task's second text
    label_field: str | None = None  # the label's column (default label)
    encoding: str | None = None  # the files' text encoding (default utf-8)

    @classmethod
    def parse(cls, options: Mapping[str, Any], where: str = "task options") -> TaskOptions:
        """The options, each a name or a path (text); an unknown one is a UserError."""
        known = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(options) - set(known))
        if unknown:
            raise UserError(f"{where}: unknown task option(s) {unknown}; known: {known}")
        for key, value in options.items():
            if value is not None and not isinstance(value, str):
                raise UserError(f"{where}: task option {key!r} must be text, got {value!r}")
        return cls(**options)

    def given(self) -> dict[str, str]:
        """The options set, as ``get_task``'s keywords."""
        return {f.name: v for f in dataclasses.fields(self) if (v := getattr(self, f.name))}


#: The task options' names: ``tune``'s task-data options and the API's keywords.
TASK_OPTIONS = tuple(f.name for f in dataclasses.fields(TaskOptions))
_TEXT_TUPLES = ("labels", "label_words", "metrics", "input_fields")


def _listed(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


@dataclass
class Task:
    """A spec plus a loader; ``splits()`` loads once and keeps the result."""

    spec: TaskSpec
    loader: Callable[[], Splits]
    #: None when the data can be loaded here, else a one-line reason; checked without loading.
    availability: Callable[[], str | None] = lambda: None
    remote: bool = False  # loading downloads the data (a hub task with no local copy)
    _splits: Splits | None = field(default=None, repr=False)

    def splits(self) -> Splits:
        if self._splits is None:
            splits = self.loader()
            for required in ("train", "dev"):
                if not splits.get(required):
                    raise UserError(f"task {self.spec.name!r} has no {required} examples")
            self._check_train(splits["train"])
            self._splits = splits
        return self._splits

    def _check_train(self, train: list[Example]) -> None:
        """Training data nothing can be learnt from is an error, not a silent constant score."""
        if not any(ex.get("text", "").strip() or ex.get("text_pair", "").strip() for ex in train):
            raise UserError(
                f"task {self.spec.name!r}: every training text is empty; check --text-field"
            )
        if self.spec.kind == "classification":
            classes = {ex["label"] for ex in train}
            if len(classes) < 2:
                only = self.spec.labels[next(iter(classes))]
                raise UserError(
                    f"task {self.spec.name!r}: every training example has the label {only!r}; "
                    "a classifier needs at least two classes (check --label-field)"
                )

    def unavailable_reason(self) -> str | None:
        """Why this task's data cannot be loaded here, or None when it can."""
        return self.availability()

    def sizes(self) -> dict[str, int]:
        """Examples per split (loads the data)."""
        return {split: len(examples) for split, examples in self.splits().items()}

    def majority_score(self) -> float | None:
        """Accuracy of always answering the most frequent training label, on dev."""
        if self.spec.kind != "classification":
            return None
        train, dev = self.splits()["train"], self.splits()["dev"]
        counts: dict[int, int] = {}
        for ex in train:
            counts[ex["label"]] = counts.get(ex["label"], 0) + 1
        top = max(counts, key=counts.__getitem__)
        return sum(ex["label"] == top for ex in dev) / len(dev)

"""A trial's settings in one place: each one's type, default, help text and check.

``TrialConfig`` is the one schema. ``petscale tune``'s options, the Python API's keywords and a
study spec's keys (with their checks) are derived from its fields; a method's own options come
from its config dataclass (``petscale.methods``). Adding a trial setting is one field here.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from petscale.checks import at_least, finite, is_a, learning_rate, within
from petscale.choices import HEAD_MODES, POOLINGS, SCHEDULES
from petscale.errors import UserError
from petscale.tasks import DEFAULT_TASK
from petscale.tasks.base import TASK_OPTIONS, TaskOptions
from petscale.zoo.names import DEFAULT_MODEL

PRECISIONS = ("no", "bf16", "fp16")


@dataclass(frozen=True)
class Rule:
    """How one setting is checked, shown and hashed."""

    help: str
    minimum: int | None = None  # whole numbers: the smallest allowed
    choices: Callable[[], tuple[str, ...]] | None = None  # called when checked
    check: Callable[[str, Any], None] | None = None  # any other check: (--flag, value)
    tune: bool = True  # a ``petscale tune`` option (and an API keyword)
    study: bool = False  # a study spec key (the grid's axes model/task/method/seed are not)
    in_id: str = "always"  # in a trial's hashed config: "always", "when set" or "never"
    #: it shapes an untuned model's score (its evaluation or its weights): the floor and the
    #: full fine-tuning a trial is held against share it
    floor: bool = False


def _setting(default: Any, rule: Rule) -> Any:
    return field(default=default, metadata={"rule": rule})


def _mapping(rule: Rule) -> Any:
    return field(default_factory=dict, metadata={"rule": rule})


@dataclass(frozen=True)
class TrialConfig:
    """One trial, normalised: every setting present, checked (``parse``)."""

    model: str = _setting(
        DEFAULT_MODEL, Rule("Model name (petscale models), local folder or hub id.")
    )
    task: str = _setting(DEFAULT_TASK, Rule("Task name (petscale tasks) or a CSV/TSV/JSONL path."))
    method: str = _setting(
        "lora", Rule("The method: a name `petscale methods` lists (with its options).")
    )
    options: Mapping[str, Any] = _mapping(
        Rule("The method's options (its config dataclass's fields).", tune=False)
    )
    head: str = _setting(
        "trainable",
        Rule(
            "Classification head: trainable, frozen, label-words, or auto (frozen on encoders, "
            "label words on T5 and decoders).",
            choices=lambda: HEAD_MODES,
            study=True,
            floor=True,
        ),
    )
    pooling: str = _setting(
        "auto",
        Rule(
            "What an encoder's head reads: auto (the checkpoint's own pooling), cls, mean.",
            choices=lambda: POOLINGS,
            study=True,
            floor=True,
        ),
    )
    steps: int | None = _setting(
        None, Rule("Optimisation steps (default: one epoch).", minimum=1, study=True)
    )
    batch_size: int = _setting(32, Rule("Training batch size.", minimum=1, study=True))
    lr: float | None = _setting(
        None,
        Rule("Learning rate (default: the method's).", study=True, check=learning_rate),
    )
    max_length: int = _setting(
        128, Rule("Truncate inputs to this many tokens.", minimum=1, study=True, floor=True)
    )
    eval_every: int = _setting(
        0, Rule("Evaluate on dev every N steps (0: at the end).", minimum=0, study=True)
    )
    eval_limit: int = _setting(
        0,
        Rule(
            "Score dev and test on this many examples each, the same ones every run "
            "(0: whole splits).",
            minimum=0,
            study=True,
            floor=True,
            in_id="when set",  # so that the ids of studies written before it stay the same
        ),
    )
    # Trainer-level options: in a trial's id only when set (the ids of earlier trials stay)
    grad_accum: int = _setting(
        1,
        Rule(
            "Batches accumulated into each optimisation step (a step's batch: batch size x this).",
            minimum=1,
            study=True,
            in_id="when set",
        ),
    )
    epochs: int | None = _setting(
        None,
        Rule(
            "Train this many epochs (instead of --steps).", minimum=1, study=True, in_id="when set"
        ),
    )
    weight_decay: float = _setting(
        0.0,
        Rule(
            "AdamW's weight decay.",
            check=lambda flag, value: within(flag, value, 0.0, 1.0),
            study=True,
            in_id="when set",
        ),
    )
    warmup_ratio: float = _setting(
        0.06,
        Rule(
            "Share of the steps over which the learning rate warms up.",
            check=lambda flag, value: within(flag, value, 0.0, 1.0),
            study=True,
            in_id="when set",
        ),
    )
    patience: int = _setting(
        0,
        Rule(
            "Stop after this many evaluations without a better dev score (0: never; needs "
            "--eval-every).",
            minimum=0,
            study=True,
            in_id="when set",
        ),
    )
    keep_best: bool = _setting(
        False,
        Rule(
            "Keep the tensors of the best dev evaluation and score test on them (default: the "
            "last step's).",
            study=True,
            in_id="when set",
        ),
    )
    checkpoint_every: int = _setting(
        0,
        Rule(
            "Save a resumable checkpoint every N steps; rerunning the same trial after a crash "
            "resumes from the last one (0: none).",
            minimum=0,
            in_id="never",  # how a run is kept safe, not what it computes
        ),
    )
    random_init: bool = _setting(
        False,
        Rule(
            "Where no weights of a known model are here (only its dimensions), tune a randomly "
            "initialised model of its shape (every result says pretrained: false).",
            study=True,
            floor=True,
            in_id="when set",
        ),
    )
    seed: int = _setting(0, Rule("Seed for data order, initialisation and masks.", minimum=0))
    schedule: str | None = _setting(
        None,
        Rule(
            "After warmup: linear or constant (default: the method's).",
            choices=lambda: SCHEDULES,
            in_id="never",
        ),
    )
    max_new_tokens: int = _setting(
        64, Rule("Generation tasks: the longest answer, in tokens.", minimum=1, in_id="never")
    )
    eval_batch_size: int = _setting(32, Rule("Evaluation batch size.", minimum=1, in_id="never"))
    precision: str = _setting(
        "no",
        Rule(
            "Mixed precision via accelerate: no, bf16 or fp16 (GPU).",
            choices=lambda: PRECISIONS,
            in_id="never",
        ),
    )
    task_options: Mapping[str, Any] = _mapping(
        Rule(
            "The task's options: " + ", ".join(TASK_OPTIONS) + ".",
            check=lambda flag, value: TaskOptions.parse(value, flag),
            tune=False,  # tune takes them as options of their own (--text-field ...)
            study=True,
            floor=True,  # they pick the data: the floor is scored on the same
            in_id="when set",
        )
    )

    @classmethod
    def parse(cls, config: Mapping[str, Any]) -> TrialConfig:
        """Defaults filled, every value checked; an unknown key or a bad value is a UserError
        naming its ``--flag``. A None value means the default."""
        known = [f.name for f in FIELDS]
        unknown = sorted(set(config) - set(known))
        if unknown:
            raise UserError(f"unknown trial setting(s) {unknown}; known: {sorted(known)}")
        given = {k: v for k, v in config.items() if v is not None}
        for key in ("options", "task_options"):
            given[key] = {k: v for k, v in dict(given.get(key) or {}).items() if v is not None}
        for name, value in given.items():
            check(name, value, f"--{name.replace('_', '-')}")
        if given.get("steps") and given.get("epochs"):
            raise UserError("give either --steps or --epochs, not both")
        if given.get("patience") and not given.get("eval_every"):
            raise UserError("--patience counts evaluations: give --eval-every N too")
        return cls(**given)

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in FIELDS}
        return {**out, "options": dict(self.options), "task_options": dict(self.task_options)}


FIELDS: tuple[dataclasses.Field, ...] = dataclasses.fields(TrialConfig)
RULES: dict[str, Rule] = {f.name: f.metadata["rule"] for f in FIELDS}
#: Each setting's type hint (``int | None`` ...), for values read back from files.
HINTS: dict[str, Any] = typing.get_type_hints(TrialConfig)
DEFAULTS: dict[str, Any] = TrialConfig().to_dict()
#: Settings that ``tune`` and ``petscale.tune(...)`` take by name (the rest are their options).
TUNE_SETTINGS = tuple(
    n for n, r in RULES.items() if r.tune and n not in ("model", "task", "method")
)
#: Settings a study spec sets once for its whole grid (each may be swept).
STUDY_SETTINGS = tuple(n for n, r in RULES.items() if r.study)
#: Settings that shape an untuned model's score: a study's untuned trial keeps them, and the
#: analyses hold a series against the floor and full fine-tuning that share them.
FLOOR_SETTINGS = tuple(n for n, r in RULES.items() if r.floor)
#: The keys of a study's trial config, in order (``eval_limit`` only when set).
CONFIG_KEYS = tuple(n for n, r in RULES.items() if r.in_id == "always")
#: Keys a study's trial config holds only when set (not at their default), so that the ids of
#: studies written before the setting existed stay the same.
WHEN_SET = tuple(n for n, r in RULES.items() if r.in_id == "when set")


def kind(name: str) -> type:
    """The setting's value type (int, float, str or Mapping), None aside."""
    hint = HINTS[name]
    if isinstance(hint, types.UnionType):
        hint = next(k for k in typing.get_args(hint) if k is not type(None))
    return typing.get_origin(hint) or hint


def check(name: str, value: Any, flag: str) -> None:
    """One setting's check, its message in command-line words (``flag``)."""
    rule = RULES[name]
    if not is_a(value, HINTS[name]):
        raise UserError(f"{flag} takes {kind(name).__name__}, got {value!r}")
    finite(flag, value)
    if rule.minimum is not None:
        at_least(flag, value, rule.minimum)
    if rule.choices is not None and value not in rule.choices():
        raise UserError(f"{flag} must be one of {', '.join(rule.choices())}")
    if rule.check is not None:
        rule.check(flag, value)

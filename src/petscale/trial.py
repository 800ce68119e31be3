"""One trial: a pure function of its config (model, task, method + options, head, steps, lr,
batch size, max length, eval cadence, seed) -> scores, counts and costs."""

from __future__ import annotations

import dataclasses
import math
import random
import sys
import time
import warnings
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from accelerate import Accelerator

from petscale import checkpoints, tracking
from petscale.answers import answerer_for
from petscale.answers.base import Answerer, Features
from petscale.budget import attach_method
from petscale.errors import UserError
from petscale.features import encode_splits
from petscale.heads import (
    answers_in_words,
    configure_head,
    head_count,
    head_parameters,
    resolve_head,
)
from petscale.ids import trial_id
from petscale.methods import check_options, get_method, option_names
from petscale.methods.base import Delta
from petscale.paths import cache_dir
from petscale.pooling import reads_weight, resolve_pooling
from petscale.results import TrialResult
from petscale.run_folder import check_out, save_run
from petscale.settings import TrialConfig
from petscale.tasks import get_task
from petscale.tasks.base import Splits, TaskSpec
from petscale.train import TrainConfig, TrainResult, evaluate, peak_memory_mb, train
from petscale.zoo.loader import LoadedModel, load_model
from petscale.zoo.registry import shape_config
from petscale.zoo.structure import Structure, position_limit, structure_of

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase


def normalize(config: Mapping[str, Any]) -> TrialConfig:
    """Fill defaults and check values (:class:`petscale.settings.TrialConfig`) and the method's
    options; unknown keys are errors. A max length past the model's positions is lowered."""
    cfg = TrialConfig.parse(config)
    get_method(cfg.method)
    check_options(cfg.method, cfg.options)  # before any data or weights are loaded
    limit = _positions(cfg.model)
    if limit is not None and cfg.max_length > limit:
        print(
            f"note: {cfg.model} has {limit} positions; --max-length {cfg.max_length} "
            f"lowered to {limit}",
            file=sys.stderr,
        )
        cfg = dataclasses.replace(cfg, max_length=limit)
    return cfg


def _positions(model: str) -> int | None:
    """The model's position limit, from its config alone; None where it has none, or where the
    config cannot be read (load_model then says why)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a hub id counted as its bundled config: fine here
            return position_limit(shape_config(model))
    except UserError:
        return None


def method_options(cfg: TrialConfig) -> dict[str, Any]:
    """The method's options; a method with its own ``seed`` (APET's placement) gets the trial's."""
    options = dict(cfg.options)
    if "seed" in option_names(cfg.method):
        options.setdefault("seed", cfg.seed)
    return options


@dataclass
class BuiltModel:
    loaded: LoadedModel
    structure: Structure
    delta: Delta
    total_params: int  # the model's own, before the method adds any tensor
    pooling: str  # what the head reads, resolved ("cls" or "mean")


def build_model(cfg: TrialConfig, spec: TaskSpec, options: dict[str, Any]) -> BuiltModel:
    """A trial's model: loaded, the method attached with ``options``, the head set up."""
    loaded = load_model(cfg.model, spec.kind, max(spec.num_labels, 1), cfg.random_init)
    if spec.labels:  # the data's label names, where transformers would say LABEL_0 ...
        loaded.model.config.id2label = dict(enumerate(spec.labels))
        loaded.model.config.label2id = {name: i for i, name in enumerate(spec.labels)}
    structure = structure_of(loaded.model)
    total_params = sum(p.numel() for p in loaded.model.parameters())
    delta = attach_method(loaded.model, cfg.method, options, structure)
    pooling = resolve_pooling(cfg.pooling, loaded.pooling, structure)
    configure_head(
        loaded.model,
        structure,
        cfg.head,
        cfg.seed,
        spec.label_words or spec.labels,
        loaded.tokenizer,
        pooling,
        delta.soft_span,
    )
    return BuiltModel(loaded, structure, delta, total_params, pooling)


def checkpoint_folder(cfg: TrialConfig) -> Path:
    """Where a trial's resumable checkpoint lives: the cache, under the hash of every setting
    but the checkpointing itself (the schedule and precision too), so that rerunning the same
    trial finds it and no other trial does."""
    settings = {k: v for k, v in cfg.to_dict().items() if k != "checkpoint_every"}
    return cache_dir() / "checkpoints" / trial_id(settings)


def evaluation_subset(size: int, limit: int) -> list[int]:
    """The examples of a split a trial is scored on: all, or ``limit`` of them drawn with a
    fixed seed, so that every trial of a study is scored on the same examples."""
    if not limit or limit >= size:
        return list(range(size))
    return sorted(random.Random(0).sample(range(size), limit))


def default_device() -> torch.device:
    """Where a model is scored outside a trial's accelerator: CUDA when available, else the
    CPU (the device a trial's one-process accelerator picks by the same rule)."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def majority_share(labels: list[Any]) -> float | None:
    """The share of the commonest label: what answering one class always scores (accuracy)."""
    if not labels:
        return None
    return round(Counter(labels).most_common(1)[0][1] / len(labels), 6)


@dataclass
class Evaluation:
    """How a trial scores a split: the same seeded subset of examples (``eval_limit``), the
    task's metric, on the model's device. Transfer and the other re-scorings use it too."""

    model: torch.nn.Module
    answerer: Answerer
    splits: Splits
    features: dict[str, list[Features]]
    metric: str
    limit: int
    batch_size: int
    device: torch.device

    @classmethod
    def build(
        cls,
        model: torch.nn.Module,
        tokenizer: PreTrainedTokenizerBase,
        answer: str,
        spec: TaskSpec,
        splits: Splits,
        cfg: TrialConfig,
        device: torch.device | None = None,
    ) -> Evaluation:
        """The evaluation of ``splits`` of the task ``spec`` by ``model`` answering in the
        format ``answer``, as ``cfg`` sets it (max length, new tokens, ``eval_limit``, eval
        batch size), on ``device`` (default: :func:`default_device`), the model moved there.
        ``run_trial`` and the re-scorings of kept runs (``petscale.deltas.transfer``) both
        build theirs here, so that they score the same examples the same way."""
        device = device or default_device()
        answerer = answerer_for(
            answer, spec, tokenizer, cfg.max_length, max_new_tokens=cfg.max_new_tokens
        )
        features = encode_splits(answerer, tokenizer, splits)
        model.to(device)
        limit, batch = cfg.eval_limit, cfg.eval_batch_size
        return cls(model, answerer, splits, features, spec.metric, limit, batch, device)

    def kept(self, split: str) -> list[int]:
        """The indices of ``split`` this trial scores."""
        return evaluation_subset(len(self.features[split]), self.limit)

    def score(self, split: str) -> float:
        kept = self.kept(split)
        return evaluate(
            self.model,
            self.answerer,
            [self.features[split][i] for i in kept],
            [self.answerer.reference(self.splits[split][i]) for i in kept],
            self.metric,
            self.batch_size,
            self.device,
        )

    def majority(self, split: str, classifies: bool) -> float | None:
        """The majority-class share of the scored examples (None: not a classification)."""
        if not classifies:
            return None
        return majority_share([self.splits[split][i]["label"] for i in self.kept(split)])


def run_trial(
    config: Mapping[str, Any],
    progress: bool = False,
    out: str | Path | None = None,
    track: tracking.Tracking | None = None,
) -> TrialResult:
    """Train and evaluate one configuration; write the trained delta to ``out`` if given.

    ``track`` (default: what ``PETSCALE_TRACK`` asks for) logs the curves to experiment
    trackers; it is not part of the config, so it never changes the trial's id.
    """
    cfg = normalize(config)
    # a head the model lacks (head frozen on a decoder) is refused before any weight loads
    resolve_head(cfg.head, not answers_in_words(cfg.model), cfg.model)
    if cfg.precision == "fp16" and not torch.cuda.is_available():
        raise UserError("--precision fp16 needs a GPU (CUDA); on a CPU use bf16 or no")
    started = time.perf_counter()
    track = track or tracking.Tracking.from_env()
    accelerator = Accelerator(
        cpu=not torch.cuda.is_available(),
        mixed_precision=cfg.precision,
        **(track.accelerator_options() if track else {}),
    )
    if out is not None and accelerator.is_main_process:  # the one process that writes it
        check_out(Path(out))
    device = accelerator.device
    task = get_task(cfg.task, **cfg.task_options)
    spec = task.spec
    splits = task.splits()
    torch.manual_seed(cfg.seed)
    built = build_model(cfg, spec, method_options(cfg))
    loaded, structure, delta = built.loaded, built.structure, built.delta
    model = loaded.model  # moved to the device by its evaluation (Evaluation.build)
    every_head_param = head_parameters(model, structure)
    head = every_head_param if cfg.head == "trainable" else {}
    params = [p for p in delta.parameters().values() if p.requires_grad] + list(head.values())
    method_config = type(delta.config)
    if method_config.trains and not params:
        reason = (
            f"the head is not trained (--head {cfg.head})"
            if every_head_param
            else "this model has no classification head (it answers in words)"
        )
        raise UserError(
            f"nothing to train: method {cfg.method!r} adds no parameters and {reason}; "
            "pick a PET method, or --head trainable on an encoder"
        )

    evaluation = Evaluation.build(model, loaded.tokenizer, loaded.answer, spec, splits, cfg, device)
    answerer, features = evaluation.answerer, evaluation.features
    batch_size = min(cfg.batch_size, len(features["train"]))  # a batch past the split is it
    epoch = math.ceil(len(features["train"]) / (batch_size * cfg.grad_accum))  # steps in one
    train_config = TrainConfig(
        steps=cfg.steps or epoch * (cfg.epochs or 1),
        batch_size=batch_size,
        lr=cfg.lr or method_config.default_lr,
        weight_decay=cfg.weight_decay,
        warmup_ratio=cfg.warmup_ratio,
        schedule=cfg.schedule or method_config.default_schedule,
        eval_every=cfg.eval_every,
        seed=cfg.seed,
        grad_accum=cfg.grad_accum,
        patience=cfg.patience,
        keep_best=cfg.keep_best,
        checkpoint=checkpoint_folder(cfg) if cfg.checkpoint_every else None,
        checkpoint_every=cfg.checkpoint_every,
    )
    # the settings as they run: the method's options after sizing, the rate and schedule used
    resolved = {
        **cfg.to_dict(),
        "options": delta.config.to_dict(),
        "pooling": built.pooling,
        **{k: getattr(train_config, k) for k in ("steps", "lr", "schedule")},
    }
    run_name = f"{Path(cfg.model).name}-{Path(cfg.task).name}-{trial_id(dict(config))}"
    tracking.start(accelerator, resolved, run_name)
    if method_config.trains:
        trained = train(
            model,
            params,
            answerer,
            features["train"],
            lambda: evaluation.score("dev"),
            train_config,
            accelerator,
            progress,
        )
    else:  # the untuned model: scored as loaded, no step taken
        model.eval()
        trained = TrainResult(curve=[(0, evaluation.score("dev"))])
        accelerator.log({"dev_score": trained.curve[0][1]}, step=0)  # no-op without trackers
    has_test = bool(features.get("test"))
    classifies = spec.kind == "classification"
    result = TrialResult(
        model=cfg.model,
        task=cfg.task,
        method=cfg.method,
        options=delta.config.to_dict(),
        head=cfg.head,
        pooling=built.pooling,
        pretrained=loaded.pretrained,
        trainable_params=delta.trainable_params,
        head_params=head_count(model, structure),
        total_params=built.total_params,
        steps=trained.steps,
        batch_size=batch_size,
        eval_limit=cfg.eval_limit,
        lr=train_config.lr,
        schedule=train_config.schedule,
        precision=cfg.precision,
        seed=cfg.seed,
        metric=spec.metric,
        random_guess=spec.random_guess(),
        # what the analyses' floors and intervals need: examples scored, majority-class share
        dev_examples=len(evaluation.kept("dev")),
        test_examples=len(evaluation.kept("test")) if has_test else None,
        dev_majority=evaluation.majority("dev", classifies),
        test_majority=evaluation.majority("test", classifies) if has_test else None,
        dev_score=trained.dev_score,  # of the tensors kept: the last step's, or the best
        test_score=evaluation.score("test") if has_test else None,
        curve=[list(point) for point in trained.curve],
        best_step=trained.best_step,
        seconds=round(time.perf_counter() - started, 3),
        step_seconds=round(trained.step_seconds, 4),
        peak_memory_mb=round(peak_memory_mb(device), 1),
    )
    if out is not None and accelerator.is_main_process:  # one writer over several processes
        # the freshly drawn weights the forward reads (a pooler the head reads past is not)
        fresh = {n: p for n, p in loaded.fresh.items() if reads_weight(built.pooling, n)}
        save_run(Path(out), delta, head, result.to_dict(), cfg.to_dict(), fresh, spec)
    if train_config.checkpoint is not None and accelerator.is_main_process:
        checkpoints.remove(train_config.checkpoint)  # finished: nothing left to resume
    tracking.finish(accelerator, result.to_dict())
    return result

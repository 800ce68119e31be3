"""The training loop: AdamW over the trainable tensors only, evaluation along the way."""

from __future__ import annotations

import math
import resource
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from accelerate import Accelerator
from accelerate.utils import DistributedType
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from torch import nn

from petscale import checkpoints
from petscale.answers.base import Answerer, Features
from petscale.checkpoints import TrainState
from petscale.errors import UserError
from petscale.tasks.metrics import score as metric_score

#: Batches are formed within groups of this many batches, sorted by length (less padding).
LENGTH_GROUP = 50
#: On an accelerator the losses are read back (a host sync) every this many steps, not each.
SYNC_EVERY = 25
#: Where accelerate's own wrapper shards the model and reduces the gradients (not tested here);
#: everywhere else (one process, or data parallel over CPUs or GPUs) the loop reduces them.
WRAPPED = (DistributedType.FSDP, DistributedType.DEEPSPEED, DistributedType.MEGATRON_LM)


class Diverged(UserError):
    """Training went non-finite (NaN or inf): the run stops and nothing trained is kept."""

    def __init__(self, what: str) -> None:
        super().__init__(f"{what}; stopped, nothing saved. Lower --lr or check the data")


@dataclass
class TrainConfig:
    steps: int
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.0
    warmup_ratio: float = 0.06
    schedule: str = "linear"  # warmup then linear decay, or warmup then constant
    eval_every: int = 0  # 0: only at the end
    max_grad_norm: float = 1.0
    seed: int = 0
    grad_accum: int = 1  # batches accumulated into one step
    patience: int = 0  # evaluations without a better dev score before stopping (0: never)
    keep_best: bool = False  # end on the tensors of the best dev evaluation
    checkpoint: Path | None = None  # where a resumable checkpoint goes (None: none)
    checkpoint_every: int = 0  # steps between checkpoints


@dataclass
class TrainResult:
    curve: list[tuple[int, float]] = field(default_factory=list)  # (step, dev score)
    losses: list[float] = field(default_factory=list)
    seconds: float = 0.0
    step_seconds: float = 0.0  # mean wall time of one optimisation step
    steps: int = 0  # steps taken (fewer than planned where patience ran out)
    best_step: int | None = None  # the evaluation whose tensors were kept (keep_best)

    @property
    def dev_score(self) -> float:
        """The dev score of the tensors the run ends on."""
        return dict(self.curve)[self.best_step] if self.best_step else self.curve[-1][1]


Evaluate = Callable[[], float]


def lr_lambda(config: TrainConfig) -> Callable[[int], float]:
    warmup = max(1, round(config.warmup_ratio * config.steps)) if config.warmup_ratio else 0

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        if config.schedule == "constant":
            return 1.0
        return max(0.0, (config.steps - step) / max(1, config.steps - warmup))

    return factor


def batches(lengths: list[int], batch_size: int, generator: torch.Generator) -> Iterator[list[int]]:
    """Endless seeded epochs cut into batches of examples of similar length.

    Each epoch is shuffled, cut into groups of ``LENGTH_GROUP`` batches, each group sorted by
    length and cut into batches, and the batches' order shuffled again: every batch is still a
    random draw of its group, with far less padding than a random batch.
    """
    group = batch_size * LENGTH_GROUP
    while True:
        order = torch.randperm(len(lengths), generator=generator).tolist()
        cut: list[list[int]] = []
        for start in range(0, len(order), group):
            members = sorted(order[start : start + group], key=lengths.__getitem__)
            cut += [members[i : i + batch_size] for i in range(0, len(members), batch_size)]
        for i in torch.randperm(len(cut), generator=generator).tolist():
            yield cut[i]


def shard(batch: list[int], rank: int, processes: int) -> list[int]:
    """Process ``rank``'s share of a global batch: a contiguous slice (the batch is sorted by
    length, so each share pads less); the shares differ by one example at most, and a batch
    smaller than the number of processes leaves some shares empty."""
    size = len(batch)
    return batch[rank * size // processes : (rank + 1) * size // processes]


def feature_length(features: Features) -> int:
    """The tokens an example contributes to a padded batch (all its fields, all formats)."""
    return sum(len(v) for v in features.values())


def evaluate(
    model: nn.Module,
    answerer: Answerer,
    features: list[Features],
    references: list[Any],
    metric: str,
    batch_size: int,
    device: torch.device,
) -> float:
    """The metric on a split. Batches hold examples of similar length: less padding.

    On a CPU a batch of 32 such rows already keeps the GEMMs efficient; larger batches span
    more lengths, so pad more, and were no faster (``benchmarks/README.md``).
    """
    order = sorted(range(len(features)), key=lambda i: len(features[i]["input_ids"]))
    predictions: list[Any] = [None] * len(features)
    was_training = model.training
    model.eval()
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            batch = to_device(answerer.collate([features[i] for i in idx]), device)
            for i, prediction in zip(idx, answerer.predict(model, batch), strict=True):
                predictions[i] = prediction
    model.train(was_training)
    return metric_score(metric, predictions, references)


def to_device(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {k: v.to(device) for k, v in batch.items()}


def train(
    model: nn.Module,
    params: list[nn.Parameter],
    answerer: Answerer,
    train_features: list[Features],
    evaluate_dev: Evaluate,
    config: TrainConfig,
    accelerator: Accelerator,
    progress: bool = True,
) -> TrainResult:
    """Train ``params`` (and nothing else) for ``config.steps`` steps.

    ``accelerator`` places the model and batches and applies mixed precision, so the same loop
    runs on a CPU, one GPU or several. Over several processes (``accelerate launch``,
    ``torchrun``) every process draws the same global batch of ``config.batch_size`` and takes
    its share (``shard``); the gradients of ``params`` and the loss are summed over the
    processes, each weighted by its share, so every process takes the step one process would
    take on the whole batch (exactly, for a loss that is a mean over examples) and the model
    itself is never wrapped: evaluation and generation see it as it is, on every process.

    A step takes ``grad_accum`` batches; ``patience`` stops after that many evaluations
    without a better dev score, and ``keep_best`` ends on the best evaluation's tensors. With
    ``checkpoint``, the run's state is saved every ``checkpoint_every`` steps and a run that
    finds one goes on from it, to the result it would have had unbroken.
    """
    torch.manual_seed(config.seed)
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    # Stepped here once per step: accelerate's wrapper would step it once per process.
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(config))
    processes, rank = accelerator.num_processes, accelerator.process_index
    wrapped = accelerator.distributed_type in WRAPPED
    if wrapped:
        model, optimizer = accelerator.prepare(model, optimizer)
    else:  # placed, mixed precision applied; no DistributedDataParallel wrapper
        model = accelerator.prepare_model(model, evaluation_mode=True)
        optimizer = accelerator.prepare_optimizer(optimizer)
        if processes > 1:  # every process starts from the same tensors, as DDP would
            for p in params:
                dist.broadcast(p.data, src=0)
    device = accelerator.device
    lengths = [feature_length(f) for f in train_features]
    order = batches(lengths, config.batch_size, torch.Generator().manual_seed(config.seed))
    state = TrainState(step=0)
    if config.checkpoint is not None:
        state = checkpoints.restore(config.checkpoint, params, optimizer, scheduler) or state
        for _ in range(state.step * config.grad_accum):  # the data order, replayed
            next(order)
    result = TrainResult()
    eval_steps = _eval_steps(config)
    model.train()
    start = time.perf_counter()
    pending: list[Pending] = []  # steps whose loss is not yet read back
    with _progress_bar(progress) as bar:
        task = bar.add_task("training", total=config.steps, loss=math.nan, dev=math.nan)
        bar.update(task, completed=state.step)
        for step in range(state.step + 1, config.steps + 1):
            step_start = time.perf_counter()
            loss = torch.zeros((), device=device)
            for _ in range(config.grad_accum):
                drawn = next(order)
                mine = shard(drawn, rank, processes)
                # each process's share of the batch, each batch's share of the step
                share = len(mine) / len(drawn) / config.grad_accum
                if mine:
                    batch = to_device(answerer.collate([train_features[i] for i in mine]), device)
                    with accelerator.autocast():
                        part = answerer.loss(model, batch) * share
                    # a wrapper averages the gradients over the processes: undo its division
                    accelerator.backward(part * processes if wrapped else part)
                    loss = loss + part.detach().float()
            if processes > 1:
                loss = _reduce(loss, [] if wrapped else params)
            norm = (
                accelerator.clip_grad_norm_(params, config.max_grad_norm)
                if config.max_grad_norm
                else torch.full((), math.nan)
            )
            rate = scheduler.get_last_lr()[0]  # the rate this step takes
            optimizer.step()
            if not getattr(optimizer, "step_was_skipped", False):  # fp16: an overflow skipped it
                scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            state.train_seconds += time.perf_counter() - step_start
            pending.append(Pending(step, loss, torch.as_tensor(norm).detach(), rate))
            stop = False
            if step in eval_steps:
                stop = _evaluated(state, step, evaluate_dev(), params, config)
            if device.type == "cpu" or step in eval_steps or step % SYNC_EVERY == 0 or stop:
                _read_back(pending, state, accelerator)
                last_dev = state.curve[-1][1] if state.curve else math.nan
                bar.update(task, completed=step, loss=state.losses[-1], dev=last_dev)
            state.step = step
            if stop:
                break
            every = config.checkpoint_every
            if config.checkpoint is not None and every and step % every == 0:
                if pending:
                    _read_back(pending, state, accelerator)
                if accelerator.is_main_process:
                    checkpoints.save(config.checkpoint, state, params, optimizer, scheduler)
    # The last update comes after the last loss: check the trained tensors once, at the end.
    if not all(bool(p.isfinite().all()) for p in params):
        raise Diverged("a trained tensor became non-finite")
    if config.keep_best and state.best is not None:
        with torch.no_grad():
            for p, kept in zip(params, state.best_tensors or [], strict=True):
                p.copy_(kept)
        result.best_step = state.best[0]
    result.curve, result.losses, result.steps = state.curve, state.losses, state.step
    result.seconds = time.perf_counter() - start
    result.step_seconds = state.train_seconds / max(1, state.step)
    return result


def _evaluated(
    state: TrainState, step: int, score: float, params: list[nn.Parameter], config: TrainConfig
) -> bool:
    """Record a dev evaluation; whether patience has run out."""
    state.curve.append((step, score))
    if state.best is None or score > state.best[1]:
        state.best, state.since_best = (step, score), 0
        if config.keep_best:  # small: the delta and the head (the whole model for full)
            state.best_tensors = [p.detach().clone() for p in params]
    else:
        state.since_best += 1
    return bool(config.patience) and state.since_best >= config.patience


def _reduce(loss: torch.Tensor, params: list[nn.Parameter]) -> torch.Tensor:
    """Sum ``loss`` and the gradients of ``params`` over the processes, in place; returns the
    summed loss (each process's loss is already weighted by its share of the batch)."""
    for p in params:
        if p.grad is None:  # this process had no example in the batch
            p.grad = torch.zeros_like(p)
    works = [dist.all_reduce(t, async_op=True) for t in [loss, *(p.grad for p in params)]]
    for work in works:
        work.wait()
    return loss


@dataclass
class Pending:
    """A step's figures not yet read back from the accelerator."""

    step: int
    loss: torch.Tensor
    grad_norm: torch.Tensor  # before clipping
    lr: float


def _read_back(pending: list[Pending], state: TrainState, accelerator: Accelerator) -> None:
    """The pending losses as floats (one host sync), logged with their steps, learning rates
    and gradient norms; empties it."""
    values = torch.stack([p.loss for p in pending]).float().tolist()
    norms = torch.stack([p.grad_norm.to(p.loss.device) for p in pending]).float().tolist()
    dev = dict(state.curve)
    for entry, value, norm in zip(pending, values, norms, strict=True):
        step = entry.step
        if not math.isfinite(value):
            raise Diverged(f"the training loss became {value} at step {step}")
        state.losses.append(value)
        logged = {"train_loss": value, "lr": entry.lr}
        if math.isfinite(norm):
            logged["grad_norm"] = norm
        if step in dev:
            logged["dev_score"] = dev[step]
        accelerator.log(logged, step=step)  # no-op unless trackers were asked for
    pending.clear()


def _eval_steps(config: TrainConfig) -> set[int]:
    steps = {config.steps}
    if config.eval_every:
        steps.update(range(config.eval_every, config.steps + 1, config.eval_every))
    return steps


def _progress_bar(enabled: bool) -> Progress:
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TextColumn("loss {task.fields[loss]:.4f}  dev {task.fields[dev]:.4f}"),
        TimeRemainingColumn(),
        disable=not enabled,
        transient=True,
        console=Console(file=sys.stderr),
    )


def peak_memory_mb(device: torch.device) -> float:
    """Peak accelerator memory on CUDA; the process's peak resident memory on CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux

"""Where one whole ``petscale tune`` trial spends its time: the whole_trial.py workload, in process.

Runs ``run_trial`` (MiniLM-L6, Rotten Tomatoes, LoRA r 8 on q, v, [CLS] head, 300 steps of
batch 32, max length 128, lr 5e-4, dev every 100 steps, then test) with timers wrapped around
its parts: task data, model load + attach, tokenization (``--cold``: into an empty feature
cache; otherwise whatever the cache holds), each evaluation, and per training step the data
work (batch indices, collation, host -> device), forward, backward, clipping and the AdamW +
schedule step. Nothing the trial computes changes; the wrappers only read the clock.

``--profile N`` also records N training steps with ``torch.profiler`` (after one warm-up step;
the trial runs N + 3 steps, the last ones and the final evaluation unrecorded) and adds the
operators' shares of self CPU time.

Run: PETSCALE_CACHE=/tmp/pcache .venv/bin/python benchmarks/trial_breakdown.py [--cold]
     [--profile 10 --out benchmarks/results/trial_profile.json]
Prints one JSON line (also written, indented, to --out).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator

import petscale.features
import petscale.train
import petscale.trial
from petscale.answers.classify import ClassifyAnswerer

HERE = Path(__file__).parent
seconds: dict[str, float] = defaultdict(float)
evaluations: list[float] = []
padded_tokens: list[int] = []
in_eval = False


def timed(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    """``function`` with its wall time added to ``seconds[name]`` (``eval/`` + name in evals)."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            seconds[("eval/" if in_eval else "") + name] += time.perf_counter() - start

    return wrapper


def timed_evaluate(function: Callable[..., float]) -> Callable[..., float]:
    def wrapper(*args: Any, **kwargs: Any) -> float:
        global in_eval
        in_eval = True
        start = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            evaluations.append(time.perf_counter() - start)
            in_eval = False

    return wrapper


def timed_batches(function: Callable[..., Iterator[list[int]]]) -> Callable[..., Iterator]:
    def wrapper(*args: Any, **kwargs: Any) -> Iterator[list[int]]:
        inner = function(*args, **kwargs)
        while True:
            start = time.perf_counter()
            item = next(inner)
            seconds["batch indices"] += time.perf_counter() - start
            yield item

    return wrapper


def count_tokens(function: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(self: Any, features: list[dict]) -> Any:
        batch = function(self, features)
        if not in_eval:
            padded_tokens.append(batch["input_ids"].numel())
        return batch

    return wrapper


def patch(cold_cache: Path | None) -> None:
    trial, train = petscale.trial, petscale.train
    trial.get_task = timed("task data", trial.get_task)
    trial.build_model = timed("model load + attach", trial.build_model)
    trial.encode_splits = timed("tokenization", trial.encode_splits)
    if cold_cache is not None:
        petscale.features.cache_dir = lambda: cold_cache
    trial.evaluate = timed_evaluate(trial.evaluate)
    train.batches = timed_batches(train.batches)
    train.to_device = timed("host -> device", train.to_device)
    ClassifyAnswerer.collate = timed("collation", count_tokens(ClassifyAnswerer.collate))
    ClassifyAnswerer.loss = timed("forward", ClassifyAnswerer.loss)
    Accelerator.backward = timed("backward", Accelerator.backward)
    Accelerator.clip_grad_norm_ = timed("clip", Accelerator.clip_grad_norm_)
    torch.optim.AdamW.step = timed("AdamW", torch.optim.AdamW.step)
    schedule = torch.optim.lr_scheduler.LambdaLR
    schedule.step = timed("schedule", schedule.step)


def profiled(steps: int) -> torch.profiler.profile:
    """A profiler that records ``steps`` training steps; each scheduler step advances it."""
    profiler = torch.profiler.profile(
        activities=[torch.profiler.ProfilerActivity.CPU],
        schedule=torch.profiler.schedule(wait=1, warmup=1, active=steps, repeat=1),
    )
    schedule = torch.optim.lr_scheduler.LambdaLR
    step = schedule.step

    def step_and_advance(self: Any, *args: Any, **kwargs: Any) -> Any:
        out = step(self, *args, **kwargs)
        profiler.step()
        return out

    schedule.step = step_and_advance
    return profiler


def top_operators(profiler: torch.profiler.profile, count: int = 12) -> list[list[Any]]:
    """The operators with the largest shares of the recorded self CPU time."""
    events = [e for e in profiler.key_averages() if e.self_cpu_time_total > 0]
    total = sum(e.self_cpu_time_total for e in events)
    ranked = sorted(events, key=lambda e: e.self_cpu_time_total, reverse=True)[:count]
    return [[e.key, round(e.self_cpu_time_total / total, 4)] for e in ranked]


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--eval-every", type=int, default=100)
    parser.add_argument("--eval-batch-size", type=int, default=None)
    parser.add_argument("--cold", action="store_true", help="tokenize into an empty cache")
    parser.add_argument("--profile", type=int, default=0, help="record N training steps")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "trial_breakdown.json")
    args = parser.parse_args()
    config = {
        "model": "minilm-l6",
        "task": "rotten_tomatoes",
        "method": "lora",
        "options": {"rank": 8},
        "lr": 5e-4,
        "batch_size": 32,
        "max_length": 128,
        "pooling": "cls",
        "steps": args.profile + 3 if args.profile else args.steps,
        "eval_every": 0 if args.profile else args.eval_every,
        "eval_batch_size": args.eval_batch_size,
    }
    with tempfile.TemporaryDirectory() as tmp:
        patch(Path(tmp) if args.cold else None)
        profiler = profiled(args.profile) if args.profile else None
        start = time.perf_counter()
        if profiler is None:
            report = petscale.trial.run_trial(config)
        else:
            with profiler:
                report = petscale.trial.run_trial(config)
        wall = time.perf_counter() - start
    steps = report["steps"]
    step_parts = ["batch indices", "collation", "host -> device", "forward", "backward"]
    step_parts += ["clip", "AdamW", "schedule"]
    train_s = sum(seconds[p] for p in step_parts)
    data_s = sum(seconds[p] for p in step_parts[:3])
    out = {
        "command": "benchmarks/trial_breakdown.py"
        + (" --cold" if args.cold else "")
        + (f" --profile {args.profile}" if args.profile else ""),
        "threads": torch.get_num_threads(),
        "load_before": os.getloadavg(),
        "wall_s": round(wall, 2),
        "cpu_s": round(cpu_seconds(), 1),  # the whole process's, imports included
        "phases_s": {
            "task data": round(seconds["task data"], 2),
            "model load + attach": round(seconds["model load + attach"], 2),
            "tokenization": round(seconds["tokenization"], 2),
            "train steps": round(train_s, 2),
            "evaluations": [round(s, 2) for s in evaluations],
            "other": round(
                wall
                - train_s
                - sum(evaluations)
                - seconds["task data"]
                - seconds["model load + attach"]
                - seconds["tokenization"],
                2,
            ),
        },
        "per_step_ms": {p: round(1000 * seconds[p] / steps, 2) for p in step_parts},
        "data_share_of_step": round(data_s / train_s, 4),
        "eval_parts_s": {k[5:]: round(v, 2) for k, v in seconds.items() if k.startswith("eval/")},
        "padded_tokens_per_step": round(sum(padded_tokens) / max(1, len(padded_tokens)), 1),
        "dev_score": report["dev_score"],
        "test_score": report["test_score"],
    }
    if profiler is not None:
        out["profile_self_cpu_share"] = top_operators(profiler)
    print(json.dumps(out))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()

"""Kept deltas evaluated zero-shot on other tasks: a delta tuned on task A scored on task B.

Two tasks are compatible when the trained model can answer B without new parameters: a
model that answers in words (T5, decoders) any two classification tasks; an encoder whose
head is label words (``head: label-words``) any two as well, its head given B's words, unless
the delta tuned the input embeddings the words are read from (full fine-tuning); an encoder's
trained or frozen head, tasks with the same label set in the same order.

Each score is the trial's own evaluation (``trial.Evaluation.build``) with ``limit`` as its
eval limit: the same seeded subset of the split, the same references and the same device
(CUDA when available) as a trial with that ``eval_limit`` scores. The table it returns is read
by ``petscale.analysis.transfer_matrix`` (relative scores) and ``same_type_vs_cross``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from petscale.analysis.floors import UNTUNED
from petscale.analysis.table import load_results
from petscale.run_folder import SavedRun, read_run
from petscale.study.store import trial_folder

if TYPE_CHECKING:
    from torch import nn
    from transformers import PreTrainedTokenizerBase

    from petscale.settings import TrialConfig
    from petscale.tasks.base import Task

COLUMNS = [
    *("trial_id", "model", "head", "structure", "budget", "seed", "source", "target"),
    *("score", "random_guess", "metric"),
]


def evaluate_transfer(
    folder: str | Path,
    pairs: Iterable[tuple[str, str]] | None = None,
    split: str = "dev",
    limit: int | None = None,
    structures: Iterable[str] | None = None,
    targets: Iterable[str | Path] | None = None,
    untuned: bool = False,
    progress: bool = False,
) -> pd.DataFrame:
    """Evaluate every kept delta of the study at ``folder`` (of the ``structures`` given, or
    all) on the compatible tasks of the study (or the (source, target) ``pairs`` given), on
    ``split`` with ``limit`` as the eval limit (the seeded subset a trial with
    ``eval_limit: limit`` scores; None or 0: the whole split). ``targets`` replaces the
    study's tasks as the tasks scored on: it may name tasks the study never tuned on (their
    in-task score, and so their relative score in ``transfer_matrix``, is then unknown).
    ``untuned`` also scores each model untuned on each target (as the kept trials set it up:
    max length, head mode, the seed of a frozen head), in rows whose source is ``UNTUNED``:
    the floor of ``relative``. ``progress`` shows a bar (on stderr) over the kept deltas.

    One row per (trial, target): trial_id, model, head, structure, budget, seed, source,
    target, score, random_guess (the target's), metric.
    """
    results = load_results(folder)
    if structures is not None:
        results = results[results["structure"].isin(list(structures))]
    wanted = None if pairs is None else set(pairs)
    tasks = sorted(set(results["task"]) if targets is None else set(map(str, targets)))
    rows = []
    with _progress_bar(progress) as bar:
        # a study's untuned trials are no delta: the untuned rows below are their scores
        tuned = results[results["method"] != UNTUNED]
        for _, trial in bar.track(list(tuned.iterrows()), description="transfer"):
            rows += _delta_rows(folder, trial, tasks, wanted, split, limit)
    if untuned:
        rows += _untuned_rows(folder, results, tasks, split, limit)
    return pd.DataFrame(rows, columns=COLUMNS)


def _progress_bar(enabled: bool) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        disable=not enabled,
        transient=True,
    )


def _delta_rows(
    folder: str | Path,
    trial: pd.Series,
    tasks: list[str],
    wanted: set[tuple[str, str]] | None,
    split: str,
    limit: int | None,
) -> list[dict]:
    """One kept delta, loaded once, scored on each of its compatible targets."""
    from petscale.api import load  # deferred: the report imports this package up front

    run_dir = trial_folder(folder, trial["trial_id"])
    targets = [t for t in tasks if wanted is None or (trial["task"], t) in wanted]
    if not (run_dir / "trial.json").is_file() or not targets:
        return []
    run = read_run(run_dir)
    model, tokenizer = load(run_dir)
    rows = []
    for target in targets:
        score = _score_on(run, model, tokenizer, target, split, limit)
        if score is not None:
            rows.append(
                {
                    "trial_id": trial["trial_id"],
                    "model": trial["model"],
                    "head": trial["head"],
                    "structure": trial["structure"],
                    "budget": trial["budget"],
                    "seed": trial["seed"],
                    "source": trial["task"],
                    "target": target,
                    **score,
                }
            )
    return rows


def _untuned_rows(
    folder: str | Path, results: pd.DataFrame, tasks: list[str], split: str, limit: int | None
) -> list[dict]:
    """Each model of the kept trials, untuned (the method ``probe`` adds nothing), scored on
    every target as its trials set it up; a trained head has no untuned state and is skipped."""
    from petscale.methods.base import read_json_object
    from petscale.tasks import get_task
    from petscale.trial import build_model, normalize

    rows, seen = [], set()
    for _, trial in results.iterrows():
        # a frozen head is drawn from the trial's seed; label words and words need no seed
        head = trial["head"]
        key = (trial["model"], head, trial["seed"] if head == "frozen" else None)
        saved = trial_folder(folder, trial["trial_id"]) / "trial.json"
        if head == "trainable" or key in seen or not saved.is_file():
            continue
        seen.add(key)
        cfg = normalize(read_json_object(saved))  # its settings only: no tensor is read
        for target in tasks:
            task = get_task(target)
            spec = task.spec
            if spec.kind != "classification":
                continue
            plain = normalize(
                {**cfg.to_dict(), "task": target, "task_options": {}, "method": "probe"}
            )
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(plain.seed)
                built = build_model(plain, spec, {})
            loaded = built.loaded
            score = _score(loaded.model, loaded.tokenizer, loaded.answer, task, plain, split, limit)
            rows.append(
                {
                    "trial_id": None,
                    "model": trial["model"],
                    "head": trial["head"],
                    "structure": UNTUNED,
                    "budget": 0,
                    "seed": key[2],
                    "source": UNTUNED,
                    "target": target,
                    "score": score,
                    "random_guess": spec.random_guess(),
                    "metric": spec.metric,
                }
            )
    return rows


def _score_on(
    run: SavedRun,
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    target: str,
    split: str,
    limit: int | None,
) -> dict | None:
    """The loaded run (delta and head, ``petscale.load``) scored on ``target``; None when the
    model cannot answer ``target`` without new parameters."""
    from petscale.heads import retarget_label_words
    from petscale.tasks import get_task
    from petscale.trial import normalize
    from petscale.zoo.loader import answer_for
    from petscale.zoo.structure import structure_of

    cfg = normalize(run.trial)
    source = get_task(cfg.task, **cfg.task_options).spec
    task = get_task(target) if target != cfg.task else get_task(cfg.task, **cfg.task_options)
    spec = task.spec
    if spec.kind != "classification" or source.kind != "classification":
        return None
    answer = answer_for(model.config, "classification")
    # A head maps to the source's classes: it answers another task only with the same labels,
    # unless it is label words, which take the target's. A model answering in words answers
    # any classification task with that task's words.
    restore = None
    if answer == "classify" and spec.labels != source.labels:
        if cfg.head != "label-words" or model.get_input_embeddings().weight.requires_grad:
            return None  # a head of weights, or label words read from tuned embeddings
        words = spec.label_words or spec.labels
        restore = retarget_label_words(model, structure_of(model), words, tokenizer)
    try:
        score = _score(model, tokenizer, answer, task, cfg, split, limit)
    finally:
        if restore is not None:
            restore()
    return {"score": score, "random_guess": spec.random_guess(), "metric": spec.metric}


def _score(
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    answer: str,
    task: Task,
    cfg: TrialConfig,
    split: str,
    limit: int | None,
) -> float:
    """``split`` of ``task`` scored as a trial of ``cfg`` with eval limit ``limit`` scores it."""
    from petscale.trial import Evaluation

    scored = dataclasses.replace(cfg, eval_limit=limit or 0)
    splits = {split: task.splits()[split]}
    return Evaluation.build(model, tokenizer, answer, task.spec, splits, scored).score(split)

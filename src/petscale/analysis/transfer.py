"""Task transfer: a delta tuned on task A, evaluated zero-shot on task B.

Two tasks are compatible when the trained model can answer B without new parameters: a
model that answers in words (T5, decoders) any two classification tasks; an encoder whose
head is label words (``head: label-words``) any two as well, its head given B's words, unless
the delta tuned the input embeddings the words are read from (full fine-tuning); an encoder's
trained or frozen head, tasks with the same label set in the same order. The
score is read against the target's own scale:
``relative = (score - floor) / (in_task - floor)``, where ``in_task`` is the score of a delta
tuned on the target itself and ``floor`` the untuned model's own score on the target where it
was evaluated (``evaluate_transfer(untuned=True)``), else random guessing (1: transfers fully;
0: no better than no tuning, or than guessing). A pretrained model already beats guessing,
often by far (label words, a frozen head), so only the untuned floor credits a delta with
what it added.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
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

    from petscale.tasks.base import Task

_MATRIX_KEYS = ("model", "head", "structure")
#: The ``source`` of ``evaluate_transfer``'s rows that score the untuned model on a target.


def transfer_matrix(scores: pd.DataFrame) -> pd.DataFrame:
    """Long form (model, head and structure where given, source, target): mean ``score`` over
    trials (``n_seeds`` of them), the target's ``random_guess``, ``untuned`` (the untuned
    model's score on the target, NaN where not evaluated), ``in_task`` (the source = target
    score), ``relative``."""
    keys = [k for k in _MATRIX_KEYS if k in scores.columns]
    tuned = scores[scores["source"] != UNTUNED]
    groups = tuned.groupby([*keys, "source", "target"], as_index=False)
    mean = groups[["score", "random_guess"]].mean()
    mean["n_seeds"] = groups.size()["size"].to_numpy()  # the trials averaged
    setup = [k for k in ("model", "head") if k in scores.columns]  # what the untuned model is
    untuned = scores[scores["source"] == UNTUNED].groupby([*setup, "target"])["score"].mean()
    cells = mean[[*setup, "target"]].itertuples(index=False, name=None)
    mean["untuned"] = [untuned.get(cell, math.nan) for cell in cells]
    diagonal = mean[mean["source"] == mean["target"]].set_index([*keys, "target"])["score"]
    in_task = [diagonal.get(tuple(row[[*keys, "target"]]), math.nan) for _, row in mean.iterrows()]
    mean["in_task"] = in_task
    floor = mean["untuned"].fillna(mean["random_guess"])
    room = mean["in_task"] - floor
    mean["relative"] = ((mean["score"] - floor) / room).where(room > 0)
    return mean


def same_type_vs_cross(matrix: pd.DataFrame, task_types: Mapping[str, str]) -> pd.DataFrame:
    """Off-diagonal pairs split into same-type and cross-type: mean relative score and count."""
    pairs = matrix[matrix["source"] != matrix["target"]].copy()
    same = [
        task_types.get(s) == task_types.get(t)
        for s, t in zip(pairs["source"], pairs["target"], strict=False)
    ]
    pairs["kind"] = ["same type" if yes else "cross type" for yes in same]
    keys = [k for k in ("model", "head") if k in pairs.columns]
    out = (
        pairs.groupby([*keys, "kind"])
        .agg(
            mean_relative=("relative", "mean"),
            mean_score=("score", "mean"),
            n_pairs=("score", "size"),
        )
        .reset_index()
    )
    return out


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
    all) on the compatible tasks of the study (or the (source, target) ``pairs`` given),
    ``limit`` examples of ``split`` each. ``targets`` replaces the study's tasks as the tasks
    scored on: it may name tasks the study never tuned on (their in-task score, and so their
    relative score in ``transfer_matrix``, is then unknown). ``untuned`` also scores each
    model untuned on each target (as the kept trials set it up: max length, head mode, the
    seed of a frozen head), in rows whose source is ``UNTUNED``: the floor of ``relative``.
    ``progress`` shows a bar (on stderr) over the kept deltas.

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
    columns = ["trial_id", "model", "head", "structure", "budget", "seed", "source", "target"]
    return pd.DataFrame(rows, columns=[*columns, "score", "random_guess", "metric"])


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
    from petscale.api import load  # here: the rest of the analyses need no model

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
    cfg: dict,
    split: str,
    limit: int | None,
) -> float:
    from petscale.answers import answerer_for
    from petscale.features import encode_splits
    from petscale.train import evaluate

    spec = task.spec
    examples = task.splits()[split][:limit]
    answerer = answerer_for(
        answer, spec, tokenizer, cfg.max_length, max_new_tokens=cfg.max_new_tokens
    )
    features = encode_splits(answerer, tokenizer, {split: examples})[split]
    refs = [answerer.reference(ex) for ex in examples]
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return evaluate(
        model.to(device), answerer, features, refs, spec.metric, cfg.eval_batch_size, device
    )

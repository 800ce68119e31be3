"""Scoring predictions: accuracy, F1, token F1, exact match and ROUGE-L, by metric name."""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Callable, Sequence

from petscale.errors import UserError

Answer = str | Sequence[str]  # a generation reference may list several acceptable answers


def accuracy(predictions: Sequence, references: Sequence) -> float:
    return sum(p == r for p, r in zip(predictions, references, strict=True)) / len(references)


def _f1(tp: int, fp: int, fn: int) -> float:
    return 2 * tp / (2 * tp + fp + fn) if tp else 0.0


def binary_f1(predictions: Sequence, references: Sequence) -> float:
    """F1 of the positive class (label 1), as GLUE reports it for MRPC and QQP."""
    pairs = list(zip(predictions, references, strict=True))
    tp = sum(p == 1 and r == 1 for p, r in pairs)
    fp = sum(p == 1 and r != 1 for p, r in pairs)
    fn = sum(p != 1 and r == 1 for p, r in pairs)
    return _f1(tp, fp, fn)


def macro_f1(predictions: Sequence, references: Sequence) -> float:
    """Unweighted mean of per-class F1 over the classes seen in the references."""
    pairs = list(zip(predictions, references, strict=True))
    scores = [
        _f1(
            sum(p == c and r == c for p, r in pairs),
            sum(p == c and r != c for p, r in pairs),
            sum(p != c and r == c for p, r in pairs),
        )
        for c in sorted(set(references))
    ]
    return sum(scores) / len(scores)


_ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalize_answer(text: str) -> str:
    """SQuAD's normalisation: lower case, drop punctuation and articles, squeeze spaces."""
    text = "".join(ch for ch in text.lower() if ch not in set(string.punctuation))
    return " ".join(_ARTICLES.sub(" ", text).split())


def _token_f1(prediction: str, answer: str) -> float:
    pred, gold = normalize_answer(prediction).split(), normalize_answer(answer).split()
    if not pred or not gold:
        return float(pred == gold)
    common = sum((Counter(pred) & Counter(gold)).values())
    if not common:
        return 0.0
    precision, recall = common / len(pred), common / len(gold)
    return 2 * precision * recall / (precision + recall)


def _answers(reference: Answer) -> list[str]:
    return [reference] if isinstance(reference, str) else list(reference)


def _best(one: Callable[[str, str], float], predictions: Sequence, references: Sequence) -> float:
    # Each prediction is scored against its best-matching acceptable answer, as SQuAD does.
    total = sum(
        max(one(p, a) for a in _answers(r)) for p, r in zip(predictions, references, strict=True)
    )
    return total / len(references)


def token_f1(predictions: Sequence[str], references: Sequence[Answer]) -> float:
    return _best(_token_f1, predictions, references)


def exact_match(predictions: Sequence[str], references: Sequence[Answer]) -> float:
    return _best(
        lambda p, a: float(normalize_answer(p) == normalize_answer(a)), predictions, references
    )


def rouge_l(predictions: Sequence[str], references: Sequence[Answer]) -> float:
    """Mean ROUGE-L F-measure (rouge-score, Porter stemming)."""
    try:
        from rouge_score import rouge_scorer
    except ImportError as error:  # an optional dependency: only summarization needs it
        raise UserError("ROUGE-L needs the rouge-score package: pip install rouge-score") from error
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    return _best(lambda p, a: scorer.score(a, p)["rougeL"].fmeasure, predictions, references)


METRICS: dict[str, Callable[[Sequence, Sequence], float]] = {
    "accuracy": accuracy,
    "f1": binary_f1,
    "macro_f1": macro_f1,
    "token_f1": token_f1,
    "exact_match": exact_match,
    "rouge_l": rouge_l,
}


def score(metric: str, predictions: list, references: list) -> float:
    """The ``metric`` score of ``predictions`` against ``references`` (same length, not empty)."""
    if metric not in METRICS:
        raise UserError(f"unknown metric {metric!r}; known metrics: {', '.join(METRICS)}")
    if len(predictions) != len(references) or not references:
        raise UserError(
            f"metric {metric}: {len(predictions)} predictions for {len(references)} references"
        )
    return METRICS[metric](predictions, references)

"""Metrics against hand-computed values."""

import pytest

from petscale.errors import UserError
from petscale.tasks.metrics import normalize_answer, score


def test_accuracy() -> None:
    assert score("accuracy", [1, 0, 1, 1], [1, 1, 1, 0]) == 0.5


def test_binary_f1_counts_class_one() -> None:
    # tp=2, fp=1, fn=1 -> 2*2 / (4 + 1 + 1)
    assert score("f1", [1, 1, 1, 0, 0], [1, 1, 0, 1, 0]) == pytest.approx(4 / 6)
    assert score("f1", [0, 0], [0, 0]) == 0.0


def test_macro_f1() -> None:
    # class 0: tp=1 fp=0 fn=1 -> 2/3; class 1: tp=1 fp=1 fn=0 -> 2/3; class 2: tp=1 -> 1
    assert score("macro_f1", [0, 1, 1, 2], [0, 0, 1, 2]) == pytest.approx((2 / 3 + 2 / 3 + 1) / 3)


def test_token_f1_squad_normalisation_and_best_answer() -> None:
    assert normalize_answer("The  Eiffel-Tower!") == "eiffeltower"
    # "the big apple" vs "big apple city": common 2, precision 2/2, recall 2/3 -> 0.8
    assert score("token_f1", ["the big apple"], ["big apple city"]) == pytest.approx(0.8)
    assert score("token_f1", ["Paris"], [["London", "paris"]]) == 1.0
    assert score("token_f1", ["x"], [["y"]]) == 0.0


def test_exact_match() -> None:
    assert score("exact_match", ["The Paris.", "Rome"], [["paris"], "Milan"]) == 0.5


def test_rouge_l_with_stemming() -> None:
    # LCS of "cats running" and "cat run" after stemming is 2 tokens: F = 1
    assert score("rouge_l", ["cats running"], ["cat run"]) == pytest.approx(1.0)
    # pred 4 tokens, ref 2, LCS 2: P=0.5, R=1 -> 2/3
    assert score("rouge_l", ["the cat sat down"], ["cat down"]) == pytest.approx(2 / 3)


def test_bad_metric_and_lengths() -> None:
    with pytest.raises(UserError, match="unknown metric 'bleu'"):
        score("bleu", [1], [1])
    with pytest.raises(UserError, match="2 predictions for 1 references"):
        score("accuracy", [1, 0], [1])

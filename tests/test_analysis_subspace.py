"""Spectra, effective rank and principal angles on planted matrices; dense deltas of runs."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

import petscale
from petscale import analysis as A
from petscale.analysis.subspace import numerical_rank, random_cosine
from petscale.deltas import dense_deltas
from petscale.run_folder import read_run

FAST = {"steps": 3, "batch_size": 8, "max_length": 16, "lr": 1e-2}


def planted(basis: torch.Tensor, singular: list[float], cols: int, seed: int) -> torch.Tensor:
    """A matrix whose left singular vectors are ``basis``'s columns."""
    generator = torch.Generator().manual_seed(seed)
    right, _ = torch.linalg.qr(
        torch.randn(cols, len(singular), generator=generator, dtype=torch.float64)
    )
    return basis @ torch.diag(torch.tensor(singular, dtype=torch.float64)) @ right.T


def test_a_planted_principal_angle_is_recovered():
    n, theta = 20, 0.6
    eye = torch.eye(n, dtype=torch.float64)
    a = planted(eye[:, :3], [3.0, 2.0, 1.0], cols=9, seed=0)
    turned = torch.stack(
        [math.cos(theta) * eye[:, 0] + math.sin(theta) * eye[:, 5], eye[:, 1], eye[:, 2]], 1
    )
    b = planted(turned, [5.0, 4.0, 0.5], cols=7, seed=1)
    assert A.principal_angles(a, b, 3) == pytest.approx([0.0, 0.0, theta], abs=1e-6)
    assert A.principal_angles(a, a, 3) == pytest.approx([0.0, 0.0, 0.0], abs=1e-6)
    # The top-1 subspaces: e0 against the turned e0 (b's largest singular value).
    assert A.principal_angles(a, b, 1) == pytest.approx([theta], abs=1e-6)
    with pytest.raises(ValueError, match="same row count"):
        A.principal_angles(a, torch.zeros(5, 3), 1)


def test_spectrum_and_effective_rank():
    assert A.spectrum(np.diag([4.0, 2.0, 1.0])) == pytest.approx([1.0, 0.5, 0.25])
    assert A.effective_rank(np.outer(np.arange(1.0, 6.0), np.ones(4))) == pytest.approx(1.0)
    assert A.effective_rank(np.eye(5)) == pytest.approx(5.0)
    assert (
        numerical_rank(np.outer(np.ones(6), np.ones(3)) + np.outer(np.arange(6.0), [1, 0, 0])) == 2
    )
    assert A.spectrum(np.zeros((3, 3))) == pytest.approx([0.0, 0.0, 0.0])


def test_random_subspaces_are_far_apart_and_the_baseline_is_seeded():
    low = random_cosine(400, 2)
    assert 0 < low < 0.2  # of the order of sqrt(k / n) = 0.07 in high dimension
    assert random_cosine(400, 2) == low
    assert random_cosine(4, 4) == pytest.approx(1.0)  # the whole space


def test_subspace_pairs_is_a_function_of_rows_and_deltas():
    """No folder read: the pairs of the rows given, per weight both deltas have, on one model."""
    eye = torch.eye(30, dtype=torch.float64)
    a = planted(eye[:, :2], [2.0, 1.0], cols=8, seed=0)
    rows = pd.DataFrame(
        {
            "trial_id": ["x", "y", "z", "w"],
            "model": ["m", "m", "m", "other"],
            "structure": ["lora", "lora", "full", "lora"],
            "budget": [10, 10, 10, 10],
            "task": ["t", "u", "t", "t"],
            "seed": [0, 0, 0, 0],
        }
    )
    far = planted(eye[:, 10:12], [2.0, 1.0], cols=8, seed=1)
    deltas = {"x": {"q": a}, "y": {"q": 3 * a, "v": a}, "z": {"q": far}, "w": {"q": a}}
    table = A.subspace_pairs(rows, deltas, k=2).set_index(["trial_a", "trial_b"])
    assert set(table.index) == {("x", "y"), ("x", "z"), ("y", "z")}  # w: another model
    assert table.loc[("x", "y"), "mean_cos"] == pytest.approx(1.0)
    assert table.loc[("x", "y"), "differs"] == "task"
    assert table.loc[("x", "z"), "mean_cos"] == pytest.approx(0.0, abs=1e-9)
    assert (table["k"] == 2).all() and (table["weight"] == "q").all()
    assert list(A.subspace_pairs(rows, {}, k=2).columns)[-1] == "above_random"


def test_dense_lora_delta_is_b_times_a(tiny_bert: Path, toy_task: Path, tmp_path: Path):
    out = tmp_path / "lora"
    petscale.tune(
        model=str(tiny_bert), task=str(toy_task), method="lora", rank=2, alpha=4, out=out, **FAST
    )
    deltas = dense_deltas(out)
    saved = read_run(out).delta
    name = "bert.encoder.layer.0.attention.self.query"
    expected = saved[f"{name}.lora_B"] @ saved[f"{name}.lora_A"] * (4 / 2)
    assert set(deltas) == {
        f"bert.encoder.layer.{i}.attention.self.{m}.weight"
        for i in (0, 1)
        for m in ("query", "value")
    }
    assert torch.allclose(deltas[f"{name}.weight"], expected, atol=1e-6)
    assert numerical_rank(deltas[f"{name}.weight"]) <= 2


def test_dense_full_delta_is_trained_minus_pretrained(
    tiny_bert: Path, toy_task: Path, tmp_path: Path
):
    out = tmp_path / "full"
    petscale.tune(model=str(tiny_bert), task=str(toy_task), method="full", out=out, **FAST)
    deltas = dense_deltas(out)
    name = "bert.encoder.layer.1.output.dense.weight"
    pretrained = load_file(tiny_bert / "model.safetensors")[name]
    assert torch.allclose(deltas[name], read_run(out).delta[name] - pretrained)
    assert deltas[name].abs().max() > 0
    assert all(t.dim() == 2 for t in deltas.values())


def test_dense_apet_delta_has_exactly_the_budget_of_entries(
    tiny_bert: Path, toy_task: Path, tmp_path: Path
):
    out = tmp_path / "apet"
    petscale.tune(
        model=str(tiny_bert),
        task=str(toy_task),
        method="apet",
        budget=60,
        pattern="adjacent",
        out=out,
        **FAST,
    )
    deltas = dense_deltas(out)
    assert sum(int((t != 0).sum()) for t in deltas.values()) == 60

"""Trainer-level options as trial settings: gradient accumulation, weight decay, warmup,
epochs, early stopping with the best evaluation's tensors kept, and a long trial that
checkpoints and resumes after a crash or a kill -9 with the result of an unbroken run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file

import petscale
from petscale.answers.classify import ClassifyAnswerer
from petscale.errors import UserError
from petscale.paths import cache_dir
from petscale.trial import Evaluation

SMALL = {"batch_size": 8, "max_length": 16, "method": "lora", "rank": 2}


def tune(tiny_bert, toy_task, **options):
    return petscale.tune(model=str(tiny_bert), task=str(toy_task), **{**SMALL, **options})


def test_gradient_accumulation_draws_that_many_batches_a_step(tiny_bert, toy_task, monkeypatch):
    calls = []
    loss = ClassifyAnswerer.loss
    monkeypatch.setattr(
        ClassifyAnswerer,
        "loss",
        lambda self, m, b: calls.append(len(b["labels"])) or loss(self, m, b),
    )
    result = tune(tiny_bert, toy_task, steps=3, grad_accum=2)
    assert result["steps"] == 3 and calls == [8] * 6


def test_epochs_set_the_length_and_exclude_steps(tiny_bert, toy_task):
    # the toy task trains on 160 examples: 10 steps an epoch at 8 x 2
    assert tune(tiny_bert, toy_task, epochs=2, grad_accum=2)["steps"] == 20
    with pytest.raises(UserError, match="either steps= or epochs="):
        tune(tiny_bert, toy_task, steps=3, epochs=1)


def test_weight_decay_and_warmup_change_the_run(tiny_bert, toy_task, tmp_path):
    runs = {}
    for name, options in {
        "plain": {},
        "decay": {"weight_decay": 0.5},
        "warmup": {"warmup_ratio": 0.5},
    }.items():
        tune(tiny_bert, toy_task, steps=4, out=tmp_path / name, **options)
        runs[name] = load_file(tmp_path / name / "delta.safetensors")
    for changed in ("decay", "warmup"):
        assert any(not torch.equal(runs["plain"][k], runs[changed][k]) for k in runs["plain"])
    with pytest.raises(UserError, match="weight_decay= must be between 0 and 1"):
        tune(tiny_bert, toy_task, steps=1, weight_decay=3.0)


def test_patience_stops_and_keep_best_ends_on_the_best_evaluation(
    tiny_bert, toy_task, tmp_path, monkeypatch
):
    planted = iter([0.5, 0.8, 0.6, 0.7, 0.9, 0.9])  # best at step 2, then two worse: stop at 4
    seen = {}

    def score(self, split):
        if split != "dev":
            return 0.5
        step = len(seen) + 1
        seen[step] = {n: p.detach().clone() for n, p in self.model.named_parameters()
                      if p.requires_grad}  # fmt: skip
        return next(planted)

    monkeypatch.setattr(Evaluation, "score", score)
    result = tune(
        tiny_bert, toy_task, steps=6, eval_every=1, patience=2, keep_best=True, out=tmp_path / "r"
    )
    assert result["steps"] == 4 and [s for s, _ in result["curve"]] == [1, 2, 3, 4]
    assert result["best_step"] == 2 and result["dev_score"] == 0.8
    saved = load_file(tmp_path / "r" / "delta.safetensors")
    lora = {k: v for k, v in saved.items() if "lora" in k}  # named as the model's parameters
    assert lora and all(torch.equal(v, seen[2][k]) for k, v in lora.items())
    assert not all(torch.equal(v, seen[4][k]) for k, v in lora.items())
    with pytest.raises(UserError, match="patience= counts evaluations"):
        tune(tiny_bert, toy_task, steps=2, patience=1)


RESUMABLE = {"steps": 6, "eval_every": 2, "seed": 3}


def test_a_crashed_trial_resumes_from_its_checkpoint_to_the_unbroken_result(
    tiny_bert, toy_task, tmp_path, monkeypatch
):
    unbroken = tune(tiny_bert, toy_task, out=tmp_path / "whole", **RESUMABLE)
    loss = ClassifyAnswerer.loss
    calls = []

    def crashes(self, model, batch):
        calls.append(1)
        if len(calls) == 5:  # during step 5, after the checkpoint of step 4
            raise RuntimeError("the machine went away")
        return loss(self, model, batch)

    monkeypatch.setattr(ClassifyAnswerer, "loss", crashes)
    options = {**RESUMABLE, "checkpoint_every": 2, "out": tmp_path / "resumed"}
    with pytest.raises(RuntimeError, match="went away"):
        tune(tiny_bert, toy_task, **options)
    assert list((cache_dir() / "checkpoints").iterdir())  # the step-4 checkpoint is there
    monkeypatch.setattr(ClassifyAnswerer, "loss", loss)
    resumed = tune(tiny_bert, toy_task, **options)
    assert resumed["curve"] == unbroken["curve"] and resumed["dev_score"] == unbroken["dev_score"]
    assert resumed["test_score"] == unbroken["test_score"]
    whole = load_file(tmp_path / "whole" / "delta.safetensors")
    again = load_file(tmp_path / "resumed" / "delta.safetensors")
    assert all(torch.equal(whole[k], again[k]) for k in whole)
    assert not list((cache_dir() / "checkpoints").iterdir())  # done: the checkpoint is gone


def test_a_trial_killed_with_sigkill_resumes_to_the_unbroken_result(tiny_bert, toy_task, tmp_path):
    cache = tmp_path / "cache"
    env = {**os.environ, "PETSCALE_CACHE": str(cache)}
    args = [sys.executable, "-m", "petscale.cli", "tune", "--model", str(tiny_bert)]
    args += ["--task", str(toy_task), "--method", "lora", "--rank", "2", "--batch-size", "8"]
    args += ["--max-length", "16", "--steps", "120", "--eval-every", "40", "--json"]
    whole = subprocess.run([*args, "--out", str(tmp_path / "whole")], env=env,
                           capture_output=True, text=True, check=True)  # fmt: skip
    resumable = [*args, "--checkpoint-every", "10", "--out", str(tmp_path / "resumed")]
    process = subprocess.Popen(resumable, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    folder = cache / "checkpoints"
    deadline = time.monotonic() + 120
    while process.poll() is None and not (folder.is_dir() and any(folder.iterdir())):
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    if process.returncode != -signal.SIGKILL:
        pytest.skip("the trial finished before it could be killed")
    again = subprocess.run(resumable, env=env, capture_output=True, text=True, check=True)
    first, second = json.loads(whole.stdout), json.loads(again.stdout)
    assert second["curve"] == first["curve"] and second["test_score"] == first["test_score"]
    a = load_file(tmp_path / "whole" / "delta.safetensors")
    b = load_file(tmp_path / "resumed" / "delta.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)

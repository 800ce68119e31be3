"""Runs that export and travel: a default run exports to PEFT with its label names and a
model card, loads after its data are gone, stores only what it trained and what its forward
reads, and says before training when it will not export."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors import safe_open
from typer.testing import CliRunner

import petscale
from petscale.cli import app
from petscale.export import export
from petscale.run_folder import BASE_PREFIX, read_run
from test_export import poolerless_bert  # noqa: F401  (the fixture)

peft = pytest.importorskip("peft")
SMALL = {"steps": 3, "batch_size": 8, "max_length": 16}
TEXTS = ["a good movie", "the plot was bad and very long"]


@pytest.fixture
def moved_task(toy_task, tmp_path):
    """A copy of the toy task that the test may delete."""
    return shutil.copytree(toy_task, tmp_path / "data")


def test_a_default_run_exports_and_round_trips_through_peft_with_its_labels(
    tiny_bert, moved_task, tmp_path
):
    run = tmp_path / "run"
    petscale.tune(model=str(tiny_bert), task=str(moved_task), out=run, **SMALL)  # defaults
    shutil.rmtree(moved_task)  # the data are gone: the run still loads and exports
    model, tokenizer = petscale.load(run)
    assert model.config.id2label == {0: "bad", 1: "good"}
    inputs = tokenizer(TEXTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        expected = model(**inputs).logits
    out = export(run, tmp_path / "peft")
    config = json.loads((out / "adapter_config.json").read_text())
    card = (out / "README.md").read_text()
    assert '{"0": "bad", "1": "good"}' in card and "PeftModel.from_pretrained" in card
    base = petscale_base(config, ["bad", "good"])
    peft_model = peft.PeftModel.from_pretrained(base, out).eval()
    assert peft_model.config.id2label == {0: "bad", 1: "good"}
    with torch.no_grad():
        assert (peft_model(**inputs).logits - expected).abs().max().item() <= 1e-5


def petscale_base(config, labels):
    from transformers import AutoModelForSequenceClassification

    return AutoModelForSequenceClassification.from_pretrained(
        config["base_model_name_or_path"],
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={name: i for i, name in enumerate(labels)},
    )


def test_a_peft_user_continuing_the_run_trains_what_petscale_trained(tiny_bert, toy_task, tmp_path):
    run = tmp_path / "run"
    result = petscale.tune(model=str(tiny_bert), task=str(toy_task), out=run, **SMALL)
    out = export(run, tmp_path / "peft")
    config = json.loads((out / "adapter_config.json").read_text())
    base = petscale_base(config, ["bad", "good"])
    model = peft.PeftModel.from_pretrained(base, out, is_trainable=True)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert trainable == result["trainable_params"] + result["head_params"]


def test_a_mean_pooled_apet_run_stores_k_values_and_the_head_only(
    poolerless_bert,  # noqa: F811
    toy_task,
    tmp_path,
):
    run = tmp_path / "run"
    result = petscale.tune(
        model=str(poolerless_bert), task=str(toy_task), method="apet", budget=50,
        pooling="mean", out=run, **SMALL,
    )  # fmt: skip
    with safe_open(run / "delta.safetensors", framework="pt") as f:
        stored = {k: f.get_slice(k).get_shape() for k in f.keys()}  # noqa: SIM118
    assert not [k for k in stored if k.startswith(BASE_PREFIX)]  # the pooler is read past
    saved = read_run(run)
    values = sum(t.numel() for t in saved.delta.values() if t.is_floating_point())
    assert values == result["trainable_params"] == 50
    assert sum(t.numel() for t in saved.head.values()) == result["head_params"]
    petscale.load(run)  # the pooler, unused, is drawn again: the run still loads


def test_export_names_the_base_given_and_tune_warns_before_training(
    poolerless_bert,  # noqa: F811
    toy_task,
    tmp_path,
):
    runner = CliRunner()
    args = ["tune", "--model", str(poolerless_bert), "--task", str(toy_task), "--steps", "1"]
    args += ["--batch-size", "8", "--max-length", "16"]
    mean = runner.invoke(app, [*args, "--pooling", "mean", "--out", str(tmp_path / "m")])
    assert mean.exit_code == 0, mean.output
    note = "note: `petscale export` will refuse this run: its head reads the mean of the text"
    assert note in mean.stderr
    assert (
        mean.stderr.index(note) < mean.stderr.index("saved to")
        if "saved to" in (mean.stderr)
        else True
    )
    cls = runner.invoke(app, [*args, "--pooling", "cls", "--out", str(tmp_path / "c")])
    assert cls.exit_code == 0 and "will refuse" not in cls.stderr
    exported = runner.invoke(
        app, ["export", str(tmp_path / "c"), "--out", str(tmp_path / "p"), "--base-model", "me/x"]
    )
    assert exported.exit_code == 0, exported.output
    config = json.loads((tmp_path / "p" / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == "me/x"
    assert "base_model: me/x" in (tmp_path / "p" / "README.md").read_text()

"""``petscale export --format peft``: PeftModel.from_pretrained loads it with the same outputs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForSequenceClassification

import petscale
import tiny
from petscale.errors import UserError
from petscale.export import export
from petscale.heads import head_parameters
from petscale.run_folder import HEAD_PREFIX
from petscale.zoo.structure import structure_of

peft = pytest.importorskip("peft")


def saved_run(tmp_path: Path, method: str, **options: object) -> tuple[Path, Path, torch.Tensor]:
    """A tiny BERT folder, and a run folder laid out as ``petscale tune --out`` writes it."""
    base = tmp_path / "base"
    tiny.model("bert").save_pretrained(base)
    net = AutoModelForSequenceClassification.from_pretrained(base).eval()
    delta = petscale.attach(net, method, **options)
    generator = torch.Generator().manual_seed(7)
    head = head_parameters(net, structure_of(net))
    with torch.no_grad():
        for p in [*delta.parameters().values(), *head.values()]:
            p.add_(torch.randn(p.shape, generator=generator) * 0.1)
    run = tmp_path / "run"
    delta.save(run, extra={f"{HEAD_PREFIX}{n}": p.detach() for n, p in head.items()})
    (run / "trial.json").write_text(json.dumps({"model": str(base), "task": "x.csv"}))
    return base, run, tiny.run(net, "bert", tiny.batch("bert"))


@pytest.mark.parametrize(("method", "options"), [("lora", {}), ("prompt", {"length": 5})])
def test_peft_loads_the_export_with_the_same_outputs(tmp_path, method, options) -> None:
    base, run, expected = saved_run(tmp_path, method, **options)
    out = export(run, tmp_path / "peft")
    config = json.loads((out / "adapter_config.json").read_text())
    assert Path(config["base_model_name_or_path"]) == base.resolve()
    assert config["modules_to_save"] == ["classifier"]
    reloaded = AutoModelForSequenceClassification.from_pretrained(
        config["base_model_name_or_path"], num_labels=tiny.LABELS
    )
    model = peft.PeftModel.from_pretrained(reloaded, out).eval()
    torch.testing.assert_close(tiny.run(model, "bert", tiny.batch("bert")), expected)


def test_lora_keys_are_peft_names(tmp_path) -> None:
    from safetensors.torch import load_file

    _, run, _ = saved_run(tmp_path, "lora")
    keys = load_file(export(run, tmp_path / "peft") / "adapter_model.safetensors")
    assert "base_model.model.bert.encoder.layer.0.attention.self.query.lora_A.weight" in keys
    assert "base_model.model.classifier.weight" in keys


def test_a_mean_pooled_head_is_refused(tmp_path) -> None:
    _, run, _ = saved_run(tmp_path, "lora")
    trial = json.loads((run / "trial.json").read_text())
    (run / "trial.json").write_text(json.dumps({**trial, "pooling": "mean"}))
    with pytest.raises(UserError, match="train with --pooling cls"):
        export(run, tmp_path / "peft")
    assert not (tmp_path / "peft").exists()


def test_methods_without_a_peft_counterpart_are_refused(tmp_path) -> None:
    _, run, _ = saved_run(tmp_path, "bitfit")
    with pytest.raises(UserError, match="no counterpart"):
        export(run, tmp_path / "peft")
    with pytest.raises(UserError, match="--format"):
        export(run, tmp_path / "x", format="onnx")

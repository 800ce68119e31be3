"""``petscale export --format peft``: PeftModel.from_pretrained loads it with the same outputs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
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


@pytest.fixture(scope="module")
def poolerless_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny BERT checkpoint saved without pooler weights (as MiniLM-L3's rebuilt folder):
    every load draws a new random pooler."""
    from transformers import AutoTokenizer, BertModel

    from petscale.zoo import assets

    folder = tmp_path_factory.mktemp("poolerless")
    config = tiny.config("bert")
    config.vocab_size = 30522  # MiniLM's tokenizer
    torch.manual_seed(0)
    BertModel(config, add_pooling_layer=False).save_pretrained(folder)
    AutoTokenizer.from_pretrained(assets.model_folder("minilm-l6")).save_pretrained(folder)
    return folder


@pytest.mark.parametrize("method", ["lora", "prompt"])
def test_a_pooler_missing_from_the_checkpoint_travels_with_the_run(
    poolerless_bert: Path, toy_task: Path, tmp_path: Path, method: str
) -> None:
    run = tmp_path / "run"
    options = {"length": 4} if method == "prompt" else {}
    petscale.tune(
        model=str(poolerless_bert), task=str(toy_task), method=method, pooling="cls", steps=3,
        batch_size=8, max_length=16, seed=3, out=run, **options,
    )  # fmt: skip
    model, tokenizer = petscale.load(run)
    inputs = tokenizer(["a good movie", "the plot was bad and very long"], padding=True,
                       return_tensors="pt")  # fmt: skip
    with torch.no_grad():
        expected = model(**inputs).logits
        torch.manual_seed(99)  # another random pooler would be drawn: the saved one must win
        again = petscale.load(run)[0](**inputs).logits
    torch.testing.assert_close(again, expected, atol=0, rtol=0)

    out = export(run, tmp_path / "peft")
    config = json.loads((out / "adapter_config.json").read_text())
    assert "bert.pooler.dense" in config["modules_to_save"]
    base = AutoModelForSequenceClassification.from_pretrained(
        config["base_model_name_or_path"], num_labels=2
    )
    peft_model = peft.PeftModel.from_pretrained(base, out).eval()
    with torch.no_grad():
        got = peft_model(**inputs).logits
    assert (got - expected).abs().max().item() <= 1e-4


def test_full_fine_tuning_of_a_checkpoint_without_a_pooler_saves_it_once(
    poolerless_bert: Path, toy_task: Path, tmp_path: Path
) -> None:
    run = tmp_path / "run"
    petscale.tune(
        model=str(poolerless_bert), task=str(toy_task), method="full", pooling="cls", steps=2,
        batch_size=8, max_length=16, out=run,
    )  # fmt: skip
    saved = load_file(run / "delta.safetensors")
    assert "bert.pooler.dense.weight" in saved  # trained by full: saved with the delta ...
    assert not any(name.startswith("base/") for name in saved)  # ... and not again as a base
    model, tokenizer = petscale.load(run)
    inputs = tokenizer(["a good movie"], return_tensors="pt")
    with torch.no_grad():
        torch.manual_seed(99)
        again = petscale.load(run)[0](**inputs).logits
        torch.testing.assert_close(again, model(**inputs).logits, atol=0, rtol=0)

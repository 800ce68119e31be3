"""Shared fixtures: an isolated cache, and tiny random models saved as local model folders."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

import tiny

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
    return tiny.save_bert_folder(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture(scope="session")
def toy_task(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A learnable two-class CSV task: the label is which of two words the text holds."""
    fillers = ["the", "a", "movie", "film", "plot", "actor", "scene", "story", "was", "very"]
    return tiny.write_toy_task(tmp_path_factory.mktemp("toy-task"), fillers, seed=0)

"""Tokenized splits, cached on disk so that a study tokenizes each task once.

The key covers everything that decides the features: the tokenizer (a hash of its full
serialisation), the task's examples, and the answer format with its template and max length.
Ragged features are stored as flat int32 arrays plus offsets in one safetensors file, written
to a temporary name and renamed, so a crash never leaves a half-written cache.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import warnings
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from transformers import PreTrainedTokenizerBase

from petscale.answers.base import Answerer, Features
from petscale.paths import cache_dir
from petscale.tasks.base import Splits

_memory: dict[str, dict[str, list[Features]]] = {}


def tokenizer_fingerprint(tokenizer: PreTrainedTokenizerBase) -> str:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        text = json.dumps(tokenizer.get_vocab())
    else:
        # Encoding sets the backend's truncation and padding state; the answerer's own key
        # covers max length, so that state is left out: the key stays the same after a call.
        state = json.loads(backend.to_str())
        state.pop("truncation", None)
        state.pop("padding", None)
        text = json.dumps(state, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def splits_fingerprint(splits: Splits) -> str:
    digest = hashlib.sha256()
    for name in sorted(splits):
        digest.update(name.encode())
        for example in splits[name]:
            digest.update(json.dumps(example, sort_keys=True).encode())
    return digest.hexdigest()


def cache_key(answerer: Answerer, tokenizer: PreTrainedTokenizerBase, splits: Splits) -> str:
    parts = [tokenizer_fingerprint(tokenizer), splits_fingerprint(splits), answerer.cache_key()]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:24]


def encode_splits(
    answerer: Answerer, tokenizer: PreTrainedTokenizerBase, splits: Splits
) -> dict[str, list[Features]]:
    """Every split's features, from memory, the disk cache, or tokenized now (then cached)."""
    key = cache_key(answerer, tokenizer, splits)
    if key in _memory:
        return _memory[key]
    path = cache_dir() / "features" / f"{key}.safetensors"
    features = _read(path) if path.is_file() else None
    if features is None:
        features = {
            name: [answerer.encode(ex) for ex in examples] for name, examples in splits.items()
        }
        _write(path, features)
    _memory[key] = features
    return features


def _write(path: Path, features: dict[str, list[Features]]) -> None:
    tensors: dict[str, torch.Tensor] = {}
    for split, rows in features.items():
        for field in rows[0] if rows else {}:
            values = [row[field] for row in rows]
            lengths = torch.tensor([len(v) for v in values], dtype=torch.int64)
            tensors[f"{split}/{field}/offsets"] = torch.cat(
                [torch.zeros(1, dtype=torch.int64), lengths.cumsum(0)]
            )
            tensors[f"{split}/{field}/values"] = torch.tensor(
                [x for v in values for x in v], dtype=torch.int32
            )
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        os.close(fd)
        save_file(tensors, tmp)
        os.replace(tmp, path)
    except (OSError, SafetensorError) as err:  # a full disk: the run goes on, uncached
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        warnings.warn(
            f"could not cache the tokenized splits in {path.parent} ({err}); going on without",
            stacklevel=3,
        )


def _read(path: Path) -> dict[str, list[Features]] | None:
    """The cached features, or None where the file is damaged (then tokenized again)."""
    try:
        return _columns(load_file(path))
    except (SafetensorError, OSError, ValueError, KeyError, RuntimeError):
        return None


def _columns(tensors: dict[str, torch.Tensor]) -> dict[str, list[Features]]:
    columns: dict[str, dict[str, list[list[int]]]] = {}
    for key in tensors:
        split, field, part = key.split("/")
        if part != "offsets":
            continue
        offsets = tensors[key].tolist()
        values = tensors[f"{split}/{field}/values"].tolist()
        columns.setdefault(split, {})[field] = [
            values[a:b] for a, b in zip(offsets[:-1], offsets[1:], strict=True)
        ]
    return {
        split: [dict(zip(cols, row, strict=True)) for row in zip(*cols.values(), strict=True)]
        for split, cols in columns.items()
    }

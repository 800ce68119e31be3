"""Crafted hostile inputs (issue 23): each function writes one bad model folder, run folder,
data file or leftover into a path the test gives, and returns it.

Model folders start as a copy of a good one (``base``: a tiny BERT with its tokenizer, the
``tiny_bert`` fixture) with one thing changed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from petscale import folders

WEIGHTS = "model.safetensors"
INDEX = "model.safetensors.index.json"


def copy_model(base: Path, target: Path) -> Path:
    shutil.copytree(base, target)
    return target


def _state(base: Path) -> dict[str, torch.Tensor]:
    return load_file(base / WEIGHTS)


def _save(tensors: dict[str, torch.Tensor], path: Path) -> None:
    save_file(tensors, path, metadata={"format": "pt"})


def _edit_config(folder: Path, **changes: Any) -> Path:
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, **changes}))
    return folder


# -- weights that are not the folder's own safetensors (item 1) --------------------------------


def pickle_index(base: Path, target: Path) -> Path:
    """An index mapping every tensor to ``weights.bin``: the real weights, pickled."""
    folder = copy_model(base, target)
    state = _state(base)
    (folder / WEIGHTS).unlink()
    torch.save(state, folder / "weights.bin")
    (folder / INDEX).write_text(json.dumps({"weight_map": dict.fromkeys(state, "weights.bin")}))
    return folder


def index_outside(base: Path, target: Path) -> Path:
    """An index naming a safetensors file beside the folder, not in it."""
    folder = copy_model(base, target)
    state = _state(base)
    shutil.copyfile(folder / WEIGHTS, target.parent / "outside.safetensors")
    (folder / WEIGHTS).unlink()
    index = {"weight_map": dict.fromkeys(state, "../outside.safetensors")}
    (folder / INDEX).write_text(json.dumps(index))
    return folder


def link_out(base: Path, target: Path, to: Path | None = None) -> Path:
    """model.safetensors as a link to a file outside the folder (a copy of the weights, or
    ``to``, such as /etc/passwd)."""
    folder = copy_model(base, target)
    if to is None:
        to = target.parent / "linked.safetensors"
        shutil.copyfile(folder / WEIGHTS, to)
    (folder / WEIGHTS).unlink()
    (folder / WEIGHTS).symlink_to(to)
    return folder


def named_weights_outside(base: Path, target: Path) -> Path:
    """config.json's ``transformers_weights`` (read by transformers in place of
    model.safetensors) naming a file outside the folder."""
    folder = copy_model(base, target)
    shutil.copyfile(folder / WEIGHTS, target.parent / "named.safetensors")
    return _edit_config(folder, transformers_weights="../named.safetensors")


# -- weights that are not the config's model (item 3) ------------------------------------------


def small_query(base: Path, target: Path) -> Path:
    """The first query weight saved as 10x10 (the config says hidden x hidden)."""
    folder = copy_model(base, target)
    state = _state(base)
    key = next(k for k in sorted(state) if k.endswith("query.weight"))
    _save({**state, key: torch.zeros(10, 10)}, folder / WEIGHTS)
    return folder


def prefixed(base: Path, target: Path, prefix: str = "foo.") -> Path:
    """Every tensor's name behind a prefix the model does not know: nothing would load."""
    folder = copy_model(base, target)
    _save({prefix + k: v for k, v in _state(base).items()}, folder / WEIGHTS)
    return folder


# -- malformed files (item 4) ------------------------------------------------------------------


def bad_safetensors(base: Path, target: Path, kind: str) -> Path:
    """model.safetensors that is not one: ``pickle`` (a torch.save renamed), ``header``
    (a header length past the file), ``truncated``, ``empty``, or ``int8`` (a weight stored as
    integers)."""
    folder = copy_model(base, target)
    path = folder / WEIGHTS
    if kind == "pickle":
        torch.save(_state(base), path)
    elif kind == "header":
        path.write_bytes((10**9).to_bytes(8, "little") + b"{}")
    elif kind == "truncated":
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "int8":
        state = _state(base)
        key = next(k for k in sorted(state) if k.endswith("query.weight"))
        _save({**state, key: torch.ones(state[key].shape, dtype=torch.int8)}, path)
    else:
        raise ValueError(kind)
    return folder


def edited_config(base: Path, target: Path, **changes: Any) -> Path:
    """config.json with ``changes`` (``hidden_size=None``, heads that do not divide ...)."""
    return _edit_config(copy_model(base, target), **changes)


def deep_config(base: Path, target: Path, depth: int = 100_000) -> Path:
    """config.json nested ``depth`` levels deep."""
    folder = copy_model(base, target)
    (folder / "config.json").write_text(
        '{"model_type": "bert", "x": ' + "[" * depth + "]" * depth + "}"
    )
    return folder


def tokenizer_vocab_list(base: Path, target: Path) -> Path:
    """tokenizer.json whose vocabulary is a list, not a map."""
    folder = copy_model(base, target)
    tokenizer = json.loads((folder / "tokenizer.json").read_text())
    tokenizer["model"]["vocab"] = list(tokenizer["model"]["vocab"])
    (folder / "tokenizer.json").write_text(json.dumps(tokenizer))
    return folder


def no_tokenizer(base: Path, target: Path) -> Path:
    """Weights and config only."""
    folder = copy_model(base, target)
    for path in folder.iterdir():
        if path.name not in ("config.json", WEIGHTS):
            path.unlink()
    return folder


def small_vocabulary(base: Path, target: Path) -> Path:
    """A model of 1,000 embeddings (weights and config agree) with a 30,522-id tokenizer."""
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    config = BertConfig(
        vocab_size=1000,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
    )
    BertForSequenceClassification(config).save_pretrained(target)
    AutoTokenizer.from_pretrained(base).save_pretrained(target)
    return target


# -- run folders -------------------------------------------------------------------------------


def run_naming(run: Path, target: Path, model: Path) -> Path:
    """A copy of the run folder ``run`` whose trial.json names the model folder ``model``."""
    shutil.copytree(run, target)
    trial = json.loads((target / "trial.json").read_text())
    (target / "trial.json").write_text(json.dumps({**trial, "model": str(model)}))
    return target


def lookalike_leftover(parent: Path, name: str = "run") -> Path:
    """A user's own folder named like swap_in's leftovers (``.run.earlier.zz``)."""
    folder = parent / f".{name}.earlier.zz"
    folder.mkdir(parents=True)
    (folder / "notes.txt").write_text("mine")
    return folder


def dead_pid() -> int:
    """The id of a process that has ended."""
    child = subprocess.Popen([sys.executable, "-c", ""])
    child.wait()
    return child.pid


def staging_of(parent: Path, name: str, pid: int, size: int = 1 << 20) -> Path:
    """A staging folder the process ``pid`` made for ``--out parent/name``, part written."""
    folder = parent / f".{name}.staging-{pid}-{folders._host()}.k1ll3d00"
    folder.mkdir(parents=True)
    (folder / "delta.safetensors").write_bytes(os.urandom(size))
    return folder


# -- data files (item 6) -----------------------------------------------------------------------


def long_line_jsonl(path: Path, chars: int) -> Path:
    """A JSON Lines file whose third example is ``chars`` characters long."""
    rows = [{"text": "good", "label": "pos"}, {"text": "bad", "label": "neg"}]
    rows.append({"text": "x" * chars, "label": "pos"})
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


def long_row_csv(path: Path, chars: int) -> Path:
    """A CSV whose second row is one quoted cell of ``chars`` characters over several lines."""
    cell = ("y" * 999 + "\n") * (chars // 1000 + 1)
    path.write_text(f'text,label\ngood,pos\n"{cell}",neg\nbad,neg\n')
    return path

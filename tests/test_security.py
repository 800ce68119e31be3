"""No code from a model folder or run folder ever runs: no custom classes, no pickles."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import petscale
from petscale.errors import UserError
from petscale.export import export
from petscale.zoo import registry
from petscale.zoo.loader import load_model

TINY = {"steps": 1, "batch_size": 8, "max_length": 16}

#: The module a crafted folder names in ``auto_map``: importing it writes a marker file.
EVIL_MODULE = """
import os, pathlib
pathlib.Path(os.environ["PETSCALE_TEST_MARKER"]).write_text("custom code ran")
from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast
class EvilConfig(BertConfig):
    model_type = "evil"
class EvilModel(BertForSequenceClassification):
    config_class = EvilConfig
class EvilTokenizer(BertTokenizerFast):
    pass
"""
AUTO_MAP = {
    "AutoConfig": "evil.EvilConfig",
    "AutoModel": "evil.EvilModel",
    "AutoModelForSequenceClassification": "evil.EvilModel",
}


@pytest.fixture
def marker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "custom-code-ran"
    monkeypatch.setenv("PETSCALE_TEST_MARKER", str(path))
    return path


def plant(source: Path, target: Path, model_type: str) -> Path:
    """A copy of the model folder ``source`` whose config and tokenizer name custom code."""
    shutil.copytree(source, target)
    (target / "evil.py").write_text(EVIL_MODULE)
    config = json.loads((target / "config.json").read_text())
    (target / "config.json").write_text(
        json.dumps({**config, "model_type": model_type, "auto_map": AUTO_MAP})
    )
    tok = json.loads((target / "tokenizer_config.json").read_text())
    tok["auto_map"] = {"AutoTokenizer": [None, "evil.EvilTokenizer"]}
    (target / "tokenizer_config.json").write_text(json.dumps(tok))
    return target


def test_count_on_a_custom_code_folder_is_refused_without_a_prompt(
    tiny_bert: Path, tmp_path: Path, marker: Path
) -> None:
    plant(tiny_bert, tmp_path / "evil", "evil")
    done = subprocess.run(
        [
            str(Path(sys.executable).parent / "petscale"),
            "count",
            "--model",
            "./evil",
            "--method",
            "lora",
        ],
        input="y\ny\n",
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        timeout=300,
    )
    assert done.returncode == 2
    assert done.stderr.startswith("error: ") and done.stderr.count("\n") == 1
    assert "own Python code" in done.stderr
    assert not marker.exists()


def test_a_known_family_with_custom_code_loads_the_builtin_classes(
    tiny_bert: Path, toy_task: Path, tmp_path: Path, marker: Path
) -> None:
    folder = plant(tiny_bert, tmp_path / "evil-bert", "bert")
    run = tmp_path / "run"
    petscale.tune(model=str(folder), task=str(toy_task), method="lora", out=run, **TINY)
    model, tokenizer = petscale.load(run)
    assert type(model).__name__ == "BertForSequenceClassification"
    assert type(tokenizer).__name__ == "BertTokenizerFast"
    assert not marker.exists()


def test_a_run_folder_naming_a_custom_code_model_is_refused(
    tiny_bert: Path, toy_task: Path, tmp_path: Path, marker: Path
) -> None:
    run = tmp_path / "run"
    petscale.tune(model=str(tiny_bert), task=str(toy_task), method="lora", out=run, **TINY)
    evil = plant(tiny_bert, tmp_path / "evil", "evil")
    trial = json.loads((run / "trial.json").read_text())
    (run / "trial.json").write_text(json.dumps({**trial, "model": str(evil)}))
    with pytest.raises(UserError, match="own Python code"):
        petscale.load(run)
    with pytest.raises(UserError, match="own Python code"):
        export(run, tmp_path / "peft")
    assert not marker.exists()


class _Planted:
    """Unpickling this writes the marker file."""

    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):
        return (Path.write_text, (self.path, "unpickled"))


def pickled_folder(tiny_bert: Path, target: Path, marker: Path) -> Path:
    """A model folder whose weights are only a pickle that writes ``marker`` when loaded."""
    shutil.copytree(tiny_bert, target)
    (target / "model.safetensors").unlink()
    with open(target / "pytorch_model.bin", "wb") as handle:
        pickle.dump(_Planted(marker), handle)
    return target


def test_a_pickle_only_folder_is_refused_naming_the_fix(
    tiny_bert: Path, tmp_path: Path, marker: Path
) -> None:
    folder = pickled_folder(tiny_bert, tmp_path / "pickled", marker)
    with pytest.raises(UserError, match="convert it to model.safetensors") as error:
        load_model(str(folder))
    assert registry.ALLOW_PICKLE_ENV in str(error.value)
    assert not marker.exists()


def test_pickles_load_only_with_the_opt_in(
    tiny_bert: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from transformers import AutoModelForSequenceClassification

    folder = tmp_path / "bin"
    shutil.copytree(tiny_bert, folder)
    (folder / "model.safetensors").unlink()
    net = AutoModelForSequenceClassification.from_pretrained(tiny_bert)
    net.save_pretrained(folder, safe_serialization=False)
    with pytest.raises(UserError, match="pickle"):
        load_model(str(folder))
    monkeypatch.setenv(registry.ALLOW_PICKLE_ENV, "1")
    assert load_model(str(folder)).pretrained


def test_a_folder_without_weights_is_one_error(tiny_bert: Path, tmp_path: Path) -> None:
    folder = tmp_path / "empty"
    shutil.copytree(tiny_bert, folder)
    (folder / "model.safetensors").unlink()
    with pytest.raises(UserError, match="holds no model weights"):
        load_model(str(folder))


def test_a_stray_safetensors_name_does_not_let_pickled_weights_through(
    tiny_bert: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "stray"
    shutil.copytree(tiny_bert, folder)
    (folder / "model.safetensors").rename(folder / "extra.safetensors")
    with (folder / "pytorch_model.bin").open("wb") as out:
        pickle.dump({"weights": "pretend"}, out)
    with pytest.raises(UserError, match="only as a pickle"):
        load_model(str(folder))


def test_a_peft_adapter_folder_is_refused_before_transformers_follows_it(
    tiny_bert: Path, tmp_path: Path
) -> None:
    # transformers would load the weights at base_model_name_or_path (anywhere) and the
    # adapter next to it, unpickling adapter_model.bin where no safetensors file is there.
    folder = tmp_path / "adapter"
    shutil.copytree(tiny_bert, folder)
    (folder / "adapter_config.json").write_text(
        json.dumps({"peft_type": "LORA", "base_model_name_or_path": str(tmp_path / "elsewhere")})
    )
    (folder / "adapter_model.bin").write_bytes(b"not read")
    with pytest.raises(UserError, match="PEFT adapter folder"):
        load_model(str(folder))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda c: [c], "not a model config"),
        (lambda c: {k: v for k, v in c.items() if k != "model_type"}, "names no model_type"),
        (lambda c: {**c, "hidden_size": -384}, "hidden_size is -384"),
        (lambda c: {**c, "num_attention_heads": 0}, "num_attention_heads is 0"),
        (lambda c: {**c, "num_hidden_layers": 100000}, "100000 layers"),
    ],
)
def test_a_crafted_config_is_one_error_before_transformers_reads_it(
    tiny_bert: Path, tmp_path: Path, change, message
) -> None:
    folder = tmp_path / "crafted"
    shutil.copytree(tiny_bert, folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps(change(config)))
    with pytest.raises(UserError, match=message):
        petscale.count(model=str(folder), method="lora")

"""Issue 23: hostile model folders, run folders, data files and a full disk. Each is refused in
one line (exit 2, no traceback) before anything trains, and nothing is lost or left behind."""

from __future__ import annotations

import errno
import os
import shutil
import sqlite3
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest
from safetensors import SafetensorError

import hostile
import petscale
from petscale.cli import main
from petscale.errors import UserError

TINY = ["--method", "lora", "--steps", "1", "--batch-size", "8", "--max-length", "16"]
FULL_DISK = "Error while serializing: I/O error: No space left on device (os error 28)"


def cli(args: list[str], monkeypatch: pytest.MonkeyPatch, capsys) -> tuple[int, str]:
    monkeypatch.setattr(sys, "argv", ["petscale", *args])
    with pytest.raises(SystemExit) as exit_:
        main()
    return exit_.value.code, capsys.readouterr().err


def refused(args: list[str], monkeypatch: pytest.MonkeyPatch, capsys, message: str) -> str:
    """Run the CLI; it must end in one line naming ``message``, with exit status 2."""
    code, err = cli(args, monkeypatch, capsys)
    assert code == 2, err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err and message in err, err
    return err


@pytest.fixture
def no_training(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("petscale.trial.train", lambda *a, **k: pytest.fail("trained"))


@pytest.fixture(scope="module")
def saved(tiny_bert: Path, toy_task: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A LoRA run folder written by ``tune --out``."""
    out = tmp_path_factory.mktemp("saved") / "run"
    petscale.tune(
        model=str(tiny_bert), task=str(toy_task), method="lora", out=out, steps=1, batch_size=8,
        max_length=16,
    )  # fmt: skip
    return out


Maker = Callable[[Path, Path], Path]
MODEL_FOLDERS: dict[str, tuple[Maker, str]] = {
    # item 1: weights only from safetensors files the folder owns
    "index naming a pickle": (hostile.pickle_index, "names 'weights.bin': it is not a safetensors"),
    "index naming a file outside": (hostile.index_outside, "is a path outside the folder"),
    "weights linked from outside": (hostile.link_out, "is a link to a file outside the folder"),
    "config naming weights outside": (hostile.named_weights_outside, "transformers_weights"),
    # item 3: weights that are not the config's model
    "a 10x10 query": (hostile.small_query, "is (10, 10) in the checkpoint, the config needs"),
    "every name prefixed": (hostile.prefixed, "the checkpoint has no bert.embeddings"),
    # item 4: malformed files
    **{
        f"safetensors: {kind}": (
            lambda b, t, kind=kind: hostile.bad_safetensors(b, t, kind),
            "is not a readable safetensors file",
        )
        for kind in ("pickle", "header", "truncated", "empty")
    },
    "an int8 weight": (
        lambda b, t: hostile.bad_safetensors(b, t, "int8"),
        "query.weight as I8, not floating point",
    ),
    "weights linked to /etc/passwd": (
        lambda b, t: hostile.link_out(b, t, Path("/etc/passwd")),
        "outside the folder (/etc/passwd)",
    ),
    "a null hidden size": (
        lambda b, t: hostile.edited_config(b, t, hidden_size=None),
        "hidden_size is null",
    ),
    "heads that do not divide the width": (
        lambda b, t: hostile.edited_config(b, t, num_attention_heads=5),
        "num_attention_heads (5) does not divide hidden_size (32)",
    ),
    "a config nested 100,000 deep": (hostile.deep_config, "nested too deeply"),
    "a hidden size of 1e12": (
        lambda b, t: hostile.edited_config(b, t, hidden_size=10**12),
        "no model has a size over 16,777,216",
    ),
    "more parameters than memory holds": (
        lambda b, t: hostile.edited_config(b, t, hidden_size=2**20, intermediate_size=64),
        "parameters, more than this machine's memory holds",
    ),
    "a tokenizer vocabulary as a list": (
        hostile.tokenizer_vocab_list,
        "its tokenizer cannot be read",
    ),
    "no tokenizer": (hostile.no_tokenizer, "holds no tokenizer"),
    "tokenizer ids past the vocabulary": (
        hostile.small_vocabulary,
        "the tokenizer gives ids up to 30,521, but the model has 1,000 embeddings",
    ),
}


@pytest.mark.parametrize("case", MODEL_FOLDERS)
def test_a_hostile_model_folder_is_one_line_before_training(
    case: str, tiny_bert: Path, toy_task: Path, tmp_path: Path, monkeypatch, capsys, no_training
) -> None:
    make, message = MODEL_FOLDERS[case]
    folder = make(tiny_bert, tmp_path / "model")
    before = sorted(p.name for p in tmp_path.iterdir())
    args = ["tune", "--model", str(folder), "--task", str(toy_task), *TINY]
    refused([*args, "--out", str(tmp_path / "run")], monkeypatch, capsys, message)
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no run, no staging left


@pytest.mark.parametrize(
    "case", ["index naming a pickle", "every name prefixed", "safetensors: truncated"]
)
def test_a_run_folder_naming_a_hostile_model_is_refused(
    case: str, saved: Path, tiny_bert: Path, tmp_path: Path
) -> None:
    make, message = MODEL_FOLDERS[case]
    run = hostile.run_naming(saved, tmp_path / "run", make(tiny_bert, tmp_path / "model"))
    with pytest.raises(UserError) as error:
        petscale.load(run)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_heads_that_do_not_divide_the_width_are_refused_by_count_too(
    tiny_bert: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    folder = hostile.edited_config(tiny_bert, tmp_path / "model", num_attention_heads=5)
    refused(["count", "--model", str(folder)], monkeypatch, capsys, "does not divide")


# -- a full disk (item 2) ----------------------------------------------------------------------


@pytest.fixture
def full_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every safetensors file written under ``tmp_path / "full"`` fails as on a full disk."""
    from petscale.methods import base

    full = tmp_path / "full"
    full.mkdir()
    real = base.save_file

    def save_file(tensors, path, *args, **kwargs):
        if Path(path).is_relative_to(full):
            raise SafetensorError(FULL_DISK)
        return real(tensors, path, *args, **kwargs)

    monkeypatch.setattr(base, "save_file", save_file)
    return full


def test_a_full_disk_keeps_the_run_elsewhere_and_says_where(
    tiny_bert: Path, toy_task: Path, full_disk: Path, monkeypatch, capsys
) -> None:
    out = full_disk / "run"
    args = ["tune", "--model", str(tiny_bert), "--task", str(toy_task), *TINY, "--out", str(out)]
    err = refused(args, monkeypatch, capsys, "No space left on device")
    assert f"could not write the run to {out}" in err and "nothing was written there" in err
    kept = Path(err.rsplit("kept in ", 1)[1].strip())
    assert (kept / "delta.safetensors").is_file() and (kept / "metrics.json").is_file()
    assert list(full_disk.iterdir()) == []  # no run, and no staging folder left behind
    shutil.rmtree(kept)


def test_a_full_disk_everywhere_says_nothing_was_kept(
    tiny_bert: Path, toy_task: Path, full_disk: Path, monkeypatch, capsys
) -> None:
    (full_disk / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(full_disk / "tmp"))
    out = full_disk / "run"
    args = ["tune", "--model", str(tiny_bert), "--task", str(toy_task), *TINY, "--out", str(out)]
    err = refused(args, monkeypatch, capsys, "nor to a temporary folder")
    assert "nothing was kept; the scores: {" in err
    assert [p.name for p in full_disk.iterdir()] == ["tmp"] and not any(
        (full_disk / "tmp").iterdir()
    )


def test_a_report_on_a_full_disk_names_its_out(tmp_path: Path, monkeypatch, capsys) -> None:
    from test_report import planted_study

    study = planted_study(tmp_path / "study", seeds=1)
    full = tmp_path / "full"
    real = Path.write_text

    def write_text(self: Path, *args, **kwargs):
        if self.is_relative_to(full):
            raise OSError(errno.ENOSPC, "No space left on device", str(self))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", write_text)
    out = full / "report"
    err = refused(
        ["report", str(study), "--out", str(out), "--json"], monkeypatch, capsys,
        f"could not write the report to {out} (No space left on device)",
    )  # fmt: skip
    assert "free some space" in err
    assert list(full.iterdir()) == []  # the staging folder is gone


def test_a_failed_feature_cache_write_does_not_stop_the_run(
    tiny_bert: Path, toy_task: Path, monkeypatch
) -> None:
    from petscale import features

    def full(*args: object, **kwargs: object) -> None:
        raise SafetensorError(FULL_DISK)

    monkeypatch.setattr(features, "save_file", full)
    monkeypatch.setattr(features, "_memory", {})
    with pytest.warns(UserWarning, match="could not cache the tokenized splits"):
        result = petscale.tune(
            model=str(tiny_bert), task=str(toy_task), method="lora", steps=1, batch_size=8,
            max_length=17,
        )  # fmt: skip
    assert result["steps"] == 1


# -- leftovers: only what petscale made is ever removed (item 5) -------------------------------


def test_load_and_tune_leave_a_folder_named_like_a_leftover_alone(
    saved: Path, tiny_bert: Path, toy_task: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    run = Path(shutil.copytree(saved, tmp_path / "run"))
    mine = hostile.lookalike_leftover(tmp_path)
    petscale.load(run)
    assert (mine / "notes.txt").read_text() == "mine"
    args = ["tune", "--model", str(tiny_bert), "--task", str(toy_task), *TINY, "--out", str(run)]
    assert cli(args, monkeypatch, capsys)[0] == 0
    assert (mine / "notes.txt").read_text() == "mine"


def test_a_reader_deletes_no_earlier_run_it_finds_aside(saved: Path, tmp_path: Path) -> None:
    run = Path(shutil.copytree(saved, tmp_path / "run"))
    aside = tmp_path / ".run.earlier.abcd1234"
    shutil.copytree(saved, aside / "run")
    petscale.load(run)
    assert (aside / "run" / "trial.json").is_file()


def test_a_later_write_removes_a_killed_run_s_staging_and_nothing_else(
    tiny_bert: Path, toy_task: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    stale = hostile.staging_of(tmp_path, "run", hostile.dead_pid())
    live = hostile.staging_of(tmp_path, "run", os.getppid())  # its process still runs
    other = tmp_path / ".run.abc12345"  # an older petscale's, or anyone's: not told apart
    other.mkdir()
    out = tmp_path / "elsewhere"
    args = ["tune", "--model", str(tiny_bert), "--task", str(toy_task), *TINY, "--out", str(out)]
    assert cli(args, monkeypatch, capsys)[0] == 0
    assert not stale.exists() and live.is_dir() and other.is_dir()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [live.name, other.name, "elsewhere"]
    )


# -- data files (item 6) -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("write", "where"),
    [(hostile.long_line_jsonl, "train.jsonl line 3"), (hostile.long_row_csv, "train.csv line 3")],
)
def test_an_example_past_the_text_limit_is_one_line(
    write, where: str, tiny_bert: Path, tmp_path: Path, monkeypatch, capsys, no_training
) -> None:
    suffix = ".jsonl" if write is hostile.long_line_jsonl else ".csv"
    data = write(tmp_path / f"train{suffix}", 1_000_001)
    args = ["tune", "--model", str(tiny_bert), "--task", str(data), *TINY]
    err = refused(args, monkeypatch, capsys, f"{where}: one example of 1,00")
    assert "over petscale's limit of 1,000,000" in err


def test_an_example_at_the_text_limit_is_read(tmp_path: Path) -> None:
    from petscale.tasks import get_task

    path = hostile.long_line_jsonl(tmp_path / "train.jsonl", 1_000_000 - 30)  # the line: 1e6
    assert sum(len(split) for split in get_task(str(path)).splits().values()) == 3


# -- study export (item 7) ---------------------------------------------------------------------


@pytest.mark.parametrize("name", ["study.sqlite-wal", "study.sqlite-shm", "study.sqlite"])
def test_an_export_onto_the_store_s_own_files_is_refused(
    name: str, tmp_path: Path, monkeypatch, capsys
) -> None:
    from test_report import planted_study

    planted_study(tmp_path, seeds=1)
    before = sorted(p.name for p in tmp_path.iterdir())
    args = ["study", "export", str(tmp_path), "--out", str(tmp_path / name)]
    refused(args, monkeypatch, capsys, "is one of the study's own files")
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    with sqlite3.connect(tmp_path / "study.sqlite") as db:
        assert db.execute("SELECT count(*) FROM trials WHERE status != 'done'").fetchone() == (0,)

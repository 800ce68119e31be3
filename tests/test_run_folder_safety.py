"""Run folders: every part checked before a tensor is used; crashes and failed writes lose
nothing; paths stored absolute."""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

import petscale
from petscale import run_folder
from petscale.cli import main
from petscale.errors import UserError
from petscale.export import export

TINY = {"steps": 2, "batch_size": 8, "max_length": 16, "pooling": "cls"}


@pytest.fixture(scope="module")
def saved(tiny_bert: Path, toy_task: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A LoRA run folder written by ``tune --out``."""
    out = tmp_path_factory.mktemp("saved") / "run"
    petscale.tune(model=str(tiny_bert), task=str(toy_task), method="lora", out=out, **TINY)
    return out


@pytest.fixture
def run(saved: Path, tmp_path: Path) -> Path:
    """A fresh copy of the saved run, to damage."""
    return Path(shutil.copytree(saved, tmp_path / "run"))


def run_cli(args: list[str], monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr(sys, "argv", ["petscale", *args])
    with pytest.raises(SystemExit) as exit_:
        main()
    return exit_.value.code


def edit_json(name: str, change: Callable[[dict], object]) -> Callable[[Path], None]:
    def damage(folder: Path) -> None:
        content = json.loads((folder / name).read_text())
        (folder / name).write_text(json.dumps(change(content)))

    return damage


def edit_tensors(change: Callable[[dict], None]) -> Callable[[Path], None]:
    def damage(folder: Path) -> None:
        tensors = load_file(folder / "delta.safetensors")
        change(tensors)
        save_file(tensors, folder / "delta.safetensors")

    return damage


def truncate(folder: Path) -> None:
    data = (folder / "delta.safetensors").read_bytes()
    (folder / "delta.safetensors").write_bytes(data[: len(data) // 2])


def first_key(tensors: dict, prefix: str = "") -> str:
    return next(k for k in sorted(tensors) if k.startswith(prefix) and "/" not in k[len(prefix) :])


def _pop(content: dict, key: str) -> dict:
    content.pop(key)
    return content


DAMAGE: dict[str, tuple[Callable[[Path], None], str]] = {
    "truncated delta.safetensors": (truncate, "damaged or not a safetensors"),
    "broken delta.json": (lambda f: (f / "delta.json").write_text('{"method": "lo'), "as JSON"),
    "delta.json a list": (lambda f: (f / "delta.json").write_text("[]"), "JSON object"),
    "unknown method": (
        edit_json("delta.json", lambda c: {**c, "method": "evil"}),
        "unknown method",
    ),
    "options not an object": (edit_json("delta.json", lambda c: {**c, "options": 3}), "options"),
    "option of the wrong type": (
        edit_json("delta.json", lambda c: {**c, "options": {**c["options"], "rank": "8"}}),
        "option 'rank'",
    ),
    "unknown option": (
        edit_json("delta.json", lambda c: {**c, "options": {**c["options"], "evil": 1}}),
        "no option",
    ),
    "rank not matching the tensors": (
        edit_json("delta.json", lambda c: {**c, "options": {**c["options"], "rank": 4}}),
        "needs torch.float32",
    ),
    "broken trial.json": (lambda f: (f / "trial.json").write_text("{"), "as JSON"),
    "trial without a model": (edit_json("trial.json", lambda c: _pop(c, "model")), "'model'"),
    "seed of the wrong type": (edit_json("trial.json", lambda c: {**c, "seed": "x"}), "'seed'"),
    "model folder gone": (
        edit_json("trial.json", lambda c: {**c, "model": "/nowhere/model"}),
        "not here",
    ),
    "another model": (
        edit_json("metrics.json", lambda c: {**c, "total_params": 5}),
        "trained on a model of 5",
    ),
    "a float64 tensor": (
        edit_tensors(lambda t: t.update({first_key(t): t[first_key(t)].double()})),
        "torch.float64",
    ),
    "an unexpected tensor": (
        edit_tensors(lambda t: t.update({"evil.weight": torch.zeros(2)})),
        "unexpected \\['evil.weight'\\]",
    ),
    "a missing tensor": (edit_tensors(lambda t: t.pop(first_key(t))), "missing"),
    "a head of the wrong width": (
        edit_tensors(lambda t: t.update({"head/classifier.weight": torch.zeros(5, 32)})),
        "head tensor classifier",
    ),
    "a NaN tensor": (
        edit_tensors(lambda t: t[first_key(t)].fill_(float("nan"))),
        "NaN or infinite",
    ),
}


@pytest.mark.parametrize("case", DAMAGE)
def test_a_damaged_run_folder_is_one_user_error(run: Path, tmp_path: Path, case: str) -> None:
    damage, message = DAMAGE[case]
    damage(run)
    with pytest.raises(UserError, match=message):
        petscale.load(run)
    with pytest.raises(UserError, match=message):
        export(run, tmp_path / "peft")
    assert not (tmp_path / "peft").exists()


@pytest.mark.parametrize("case", ["truncated delta.safetensors", "broken delta.json"])
def test_export_of_a_damaged_run_exits_2_with_one_line(
    run: Path, tmp_path: Path, case: str, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    DAMAGE[case][0](run)
    assert run_cli(["export", str(run), "--out", str(tmp_path / "peft")], monkeypatch) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1


def test_export_out_a_file_is_one_line(
    run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    afile = tmp_path / "afile"
    afile.write_text("x")
    for out in (afile, afile / "below"):
        assert run_cli(["export", str(run), "--out", str(out)], monkeypatch) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1
    assert afile.read_text() == "x"


def test_paths_are_stored_absolute_and_load_from_another_folder(
    tiny_bert: Path, toy_task: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tiny_bert.parent)
    petscale.tune(
        model=tiny_bert.name,
        task=os.path.relpath(toy_task),
        method="lora",
        out=tmp_path / "run",
        **TINY,
    )
    trial = json.loads((tmp_path / "run" / "trial.json").read_text())
    assert trial["model"] == str(tiny_bert.resolve())
    assert trial["task"] == str(toy_task.resolve())
    monkeypatch.chdir(tmp_path)
    model, _ = petscale.load("run")
    assert not model.training


def interrupted_swap(saved: Path, tmp_path: Path) -> tuple[Path, Path]:
    """The state a kill between ``swap_in``'s two renames leaves: no run folder, the earlier
    run in a hidden sibling, and the new run's complete staging folder."""
    out = tmp_path / "run"
    aside = tmp_path / ".run.earlier.x1y2" / "run"
    shutil.copytree(saved, aside)
    shutil.copytree(saved, tmp_path / ".run.abc123")
    return out, aside.parent


def test_load_and_export_put_back_a_run_a_crash_left_aside(saved: Path, tmp_path: Path) -> None:
    out, aside = interrupted_swap(saved, tmp_path)
    with pytest.warns(UserWarning, match="put back"):
        petscale.load(out)
    assert (out / "trial.json").is_file() and not aside.exists()
    out2, aside2 = interrupted_swap(saved, tmp_path / "second")
    export(out2, tmp_path / "peft")
    assert (out2 / "delta.safetensors").is_file() and not aside2.exists()


def test_the_next_tune_puts_back_a_run_a_crash_left_aside(
    saved: Path, tiny_bert: Path, toy_task: Path, tmp_path: Path
) -> None:
    out, aside = interrupted_swap(saved, tmp_path)
    run_folder.check_out(out)  # what tune runs before training
    assert (out / "trial.json").is_file() and not aside.exists()


def test_leftovers_of_a_finished_swap_are_removed(saved: Path, tmp_path: Path) -> None:
    out, aside = interrupted_swap(saved, tmp_path)
    shutil.copytree(saved, out)  # the kill came after the second rename
    run_folder.check_out(out)
    assert not aside.exists() and (out / "trial.json").is_file()


def test_a_planted_link_among_leftovers_moves_and_deletes_nothing(
    saved: Path, tmp_path: Path
) -> None:
    # A folder someone hands over with a link where swap_in leaves an earlier run: recovery
    # must not move the linked folder's contents in, nor delete them.
    elsewhere = tmp_path / "elsewhere"
    shutil.copytree(saved, elsewhere / "run")
    (tmp_path / "given").mkdir()
    (tmp_path / "given" / ".run.earlier.x1y2").symlink_to(elsewhere)
    out = tmp_path / "given" / "run"
    run_folder.check_out(out)
    assert not out.exists()
    assert (elsewhere / "run" / "trial.json").is_file()


def test_an_out_below_a_file_is_refused_before_training(
    tiny_bert: Path, toy_task: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    (tmp_path / "afile").write_text("x")
    monkeypatch.setattr("petscale.trial.train", lambda *a, **k: pytest.fail("trained"))
    args = ["tune", "--model", str(tiny_bert), "--task", str(toy_task), "--steps", "1"]
    assert run_cli([*args, "--out", str(tmp_path / "afile" / "run")], monkeypatch) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "is a file" in err


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes to read-only folders")
def test_an_unwritable_out_is_refused_before_training(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(UserError, match="cannot be written"):
            run_folder.check_out(locked / "run")
    finally:
        locked.chmod(0o700)


def test_a_failed_swap_keeps_the_finished_run(
    tiny_bert: Path, toy_task: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(staging: Path, out: Path) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(run_folder, "swap_in", refuse)
    with pytest.raises(UserError, match="it was kept in") as error:
        petscale.tune(model=str(tiny_bert), task=str(toy_task), out=tmp_path / "run", **TINY)
    kept = Path(str(error.value).rsplit("kept in ", 1)[1])
    assert (kept / "delta.safetensors").is_file() and (kept / "metrics.json").is_file()


def test_a_failed_write_keeps_the_run_elsewhere(
    tiny_bert: Path, toy_task: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = run_folder._write
    tried: list[Path] = []

    def full_disk_at_out(folder: Path, *args: object) -> None:
        tried.append(folder)
        if folder.parent == tmp_path:
            raise OSError(28, "No space left on device")
        real(folder, *args)

    monkeypatch.setattr(run_folder, "_write", full_disk_at_out)
    with pytest.raises(UserError, match="No space left on device.*kept in") as error:
        petscale.tune(model=str(tiny_bert), task=str(toy_task), out=tmp_path / "run", **TINY)
    kept = Path(str(error.value).rsplit("kept in ", 1)[1])
    assert kept == tried[-1] and (kept / "delta.safetensors").is_file()
    assert not (tmp_path / "run").exists()
    assert [p.name for p in tmp_path.iterdir()] == []  # the failed staging folder is gone
    shutil.rmtree(kept)


def test_export_replaces_only_an_earlier_export_never_other_files(saved: Path, tmp_path: Path):
    out = tmp_path / "peft"
    export(saved, out)
    export(saved, out)  # an earlier export is replaced whole
    assert sorted(p.name for p in out.iterdir()) == [
        "README.md",  # the model card
        "adapter_config.json",
        "adapter_model.safetensors",
    ]
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "adapter_config.json").write_text('{"mine": 1}')
    (mine / "README.md").write_text("keep")
    for target in (mine, saved, saved / "sub"):
        with pytest.raises(UserError, match="not a PEFT adapter|inside the run folder"):
            export(saved, target)
    assert (mine / "adapter_config.json").read_text() == '{"mine": 1}'
    assert not (saved / "adapter_config.json").exists()

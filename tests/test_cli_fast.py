"""The command line answers at once: ``petscale --help``, every command's ``--help`` and the
listings (``models``, ``tasks``, ``methods``) import neither torch nor transformers (nor the
other heavy libraries), each checked in a fresh process; ``petscale models`` reads its figures
from ``zoo/catalog.json``, which must match the models measured on the meta device."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import typer

import petscale.cli
from petscale.cli import COMMANDS, load_command, main
from petscale.zoo import catalog, measure

ROOT = Path(__file__).resolve().parents[1]
#: What must not be imported to show a help or a listing: each takes a second or more.
HEAVY = ("torch", "transformers", "accelerate", "datasets", "pandas", "matplotlib", "peft", "ray")
STUDY = ("run", "plan", "status", "export", "thresholds")
#: The command lines that must stay light, with their exit status.
LIGHT = [
    (["--help"], 0),
    ([], 2),  # no command: the help's hint, one line on stderr
    *(([name, "--help"], 0) for name in COMMANDS),
    *((["study", name, "--help"], 0) for name in STUDY),
    (["models"], 0),
    (["models", "--json"], 0),
    (["methods"], 0),
    (["methods", "--json"], 0),
    (["tasks"], 0),
    (["tasks", "--json"], 0),
]

# Run as ``python -c PROBE ARGS...``: the console entry's main(), then which heavy modules the
# process holds, written as JSON to the file $PROBE_OUT (stdout and stderr stay the command's).
PROBE = """
import json, os, sys
from petscale.cli import main
try:
    main()
except SystemExit as exit_:
    code = exit_.code
else:
    code = 0
heavy = json.loads(os.environ["PROBE_HEAVY"])
with open(os.environ["PROBE_OUT"], "w") as out:
    json.dump({"code": code, "heavy": [m for m in heavy if m in sys.modules]}, out)
"""


def probe(args: list[str], tmp_path: Path) -> tuple[dict, subprocess.CompletedProcess]:
    out = tmp_path / "probe.json"
    env = {**os.environ, "PROBE_OUT": str(out), "PROBE_HEAVY": json.dumps(HEAVY)}
    env["COLUMNS"] = "120"
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        check=False,
        timeout=120,
    )
    assert out.is_file(), done.stderr  # the probe ran to its end
    return json.loads(out.read_text()), done


@pytest.mark.parametrize(("args", "code"), LIGHT, ids=[" ".join(a) or "-" for a, _ in LIGHT])
def test_help_and_listings_import_nothing_heavy(args: list[str], code: int, tmp_path) -> None:
    found, done = probe(args, tmp_path)
    assert found["code"] == code, done.stderr
    assert found["heavy"] == [], f"petscale {' '.join(args)} imported {found['heavy']}"
    if code == 0:
        assert done.stdout.strip(), done.stderr


def test_the_probe_sees_a_heavy_import(tmp_path) -> None:
    """The check above can fail: a command that tunes holds torch when it ends."""
    found, done = probe(["count", "--model", "bert-tiny", "--method", "lora", "--json"], tmp_path)
    assert found["code"] == 0, done.stderr
    assert "torch" in found["heavy"]


def test_each_listed_help_is_its_commands_docstring() -> None:
    """``petscale --help`` lists ``COMMANDS``' lines without importing a command: each is the
    first paragraph of the command's docstring (a group: the help it is built with)."""
    for name, (_, _, line) in COMMANDS.items():
        command = load_command(name)
        assert command.name == name
        shown = command.short_help or command.help
        assert shown == line, f"{name}: COMMANDS says {line!r}, the command {shown!r}"


def test_the_group_builds_a_command_when_it_runs_or_shows_help() -> None:
    group = typer.main.get_command(petscale.cli.app)
    # the module's own class now (a test that adds a method reloads the CLI)
    assert isinstance(group, petscale.cli.LazyGroup)
    assert group.list_commands(None) == list(COMMANDS)
    tune = group.get_command(None, "tune")
    assert any(p.name == "rank" for p in tune.params)  # the real command, every option
    assert group.get_command(None, "tune") is tune  # built once per group
    assert group.get_command(None, "nope") is None


def test_a_typo_still_gets_a_suggestion(monkeypatch, capsys) -> None:
    monkeypatch.setattr(sys, "argv", ["petscale", "tun"])
    with pytest.raises(SystemExit) as exit_:
        main()
    assert exit_.value.code == 2
    assert "No such command 'tun'. Did you mean 'tune'?" in capsys.readouterr().err


def test_the_catalog_file_holds_what_the_models_measure() -> None:
    """``zoo/catalog.json`` is every known model measured on the meta device, exactly: after
    adding or changing a model, rewrite it (``python -m petscale.zoo.measure``)."""
    assert measure.text(measure.measured()) == measure.CATALOG_FILE.read_text(encoding="utf-8"), (
        f"zoo/catalog.json is stale: run {catalog.REWRITE}"
    )


def test_the_catalog_file_ships_with_the_package() -> None:
    package_data = (ROOT / "pyproject.toml").read_text(encoding="utf-8").split("package-data]")[1]
    assert '"zoo/catalog.json"' in package_data.split("[")[1]  # petscale's list of data files

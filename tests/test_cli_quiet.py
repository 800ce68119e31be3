"""The command line prints petscale's output, not the libraries' load-time chatter."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import tiny


def test_a_fresh_head_is_not_announced_by_transformers(tiny_bert: Path, tmp_path: Path) -> None:
    # A 2-class checkpoint on a 3-class task: transformers would say its head is new.
    task = tmp_path / "task"
    task.mkdir()
    tiny.write_toy_task(task, ["a", "the", "it"], 0, ("red", "green", "blue"))
    args = ["tune", "--model", str(tiny_bert), "--task", str(task), "--steps", "1", "--json"]
    done = subprocess.run(
        [sys.executable, "-c", "from petscale.cli import main; main()", *args],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "newly initialized" not in done.stderr and "TRAIN this model" not in done.stderr

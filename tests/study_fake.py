"""A fake trial function for the study tests: fast, deterministic, and observable.

It sleeps ``steps / 1000`` seconds, appends ``<trial id> <pid>`` to ``$STUDY_FAKE_LOG`` (when
set) so tests can count runs, and raises for task "boom" unless ``$STUDY_FAKE_FIXED`` exists.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from petscale.study.spec import trial_id


def trial(config: dict[str, Any]) -> dict[str, Any]:
    tid = trial_id(config)
    if log := os.environ.get("STUDY_FAKE_LOG"):
        with open(log, "a") as f:  # one short append: atomic across processes
            f.write(f"{tid} {os.getpid()}\n")
    time.sleep(config["steps"] / 1000)
    if (
        config["task"] == "boom"
        and not Path(os.environ.get("STUDY_FAKE_FIXED", "/nonexistent")).exists()
    ):
        raise RuntimeError(f"boom in {tid}")
    score = (config["seed"] + 1) / 10
    return {
        "trainable_params": config["options"].get("budget", 1000),
        "head_params": 770,
        "total_params": 22_700_000,
        "metric": "accuracy",
        "dev_score": score,
        "test_score": None,
        "curve": [
            [step, score * step / config["steps"]]
            for step in range(0, config["steps"] + 1, config["eval_every"])
        ],
        "seconds": config["steps"] / 1000,
        "peak_memory_mb": 12.5,
        "random_guess": 0.5,
    }


def timeless(config: dict[str, Any]) -> dict[str, Any]:
    """A trial whose result lacks its time (a custom trial function's slip)."""
    return {"dev_score": 0.5}

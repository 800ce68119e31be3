"""`petscale demo`: the bundled miniature study, and the command run end to end on tiny models."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml

from petscale import demo
from petscale.cli import main
from petscale.study.spec import expand, load_spec
from petscale.study.store import Store


def test_the_bundled_demo_spec_is_the_study_in_miniature() -> None:
    spec = load_spec(demo.demo_spec_path())
    configs = expand(spec)
    assert set(spec.models) == {"minilm-l3", "minilm-l6"}
    assert {"rotten_tomatoes", "trec"} == set(spec.tasks)  # two task types
    methods = {c["method"] for c in configs}
    # untuned: each (model, task, seed, head)'s floor, which the spec adds by default
    assert methods == {"full", "probe", "lora", "bitfit", "adapter", "prompt", "apet", "untuned"}
    patterns = {c["options"].get("pattern") for c in configs if c["method"] == "apet"}
    assert patterns == {"adjacent", "discrete"}
    budgets = sorted({c["options"]["budget"] for c in configs if c["method"] == "apet"})
    assert budgets[0] <= 10 and budgets[-1] >= 100_000  # wide enough to bracket both thresholds
    # head-free, except the head alone, which has nothing else to train
    tuned = [c for c in configs if c["method"] not in ("probe", "untuned")]
    assert {c["head"] for c in tuned} == {"frozen"}
    assert {c["head"] for c in configs if c["method"] == "probe"} == {"trainable"}
    # one floor per head the grid scores with: the probe's is its own untuned trainable head
    floors = [c for c in configs if c["method"] == "untuned"]
    assert {c["head"] for c in floors} == {"frozen", "trainable"}
    assert len(floors) == len(spec.models) * len(spec.tasks) * len(spec.seeds) * 2
    assert {c["eval_limit"] for c in configs} == {300}  # scored on a fixed subset: it fits 15 min


def test_demo_runs_reports_and_resumes(
    tiny_bert: Path, toy_task: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    spec = tmp_path / "demo.yaml"
    spec.write_text(
        yaml.safe_dump(
            {
                "models": [str(tiny_bert)],
                "tasks": [str(toy_task)],
                "methods": [
                    "full",
                    "lora",
                    {"apet": {"pattern": "adjacent", "budgets": [10, 1000]}},
                ],
                "steps": 6,
                "batch_size": 8,
                "eval_every": 3,
                "max_length": 16,
                "head": "frozen",
            }
        )
    )
    monkeypatch.setattr(demo, "demo_spec_path", lambda: spec)
    out = tmp_path / "demo"

    def run() -> dict:
        monkeypatch.setattr(sys, "argv", ["petscale", "demo", "--out", str(out), "--json"])
        with pytest.raises(SystemExit) as exit_:
            main()
        assert exit_.value.code == 0
        return json.loads(capsys.readouterr().out)

    first = run()
    # full, lora, APET at two budgets, and the untuned trial (the floor) the spec adds
    assert first["counts"]["done"] == 5
    assert Path(first["report"]) == out / "report" / "report.html"
    assert Path(first["report"]).is_file()
    assert (out / "spec.yaml").read_text() == spec.read_text()
    assert len(list((out / "trials").iterdir())) == 5  # every trial kept its run folder
    with Store.existing(out) as store:
        finished = [r["finished_at"] for r in store.rows()]
    second = run()  # resumes from the store: nothing runs again
    assert second["counts"]["done"] == 5
    with Store.existing(out) as store:
        assert [r["finished_at"] for r in store.rows()] == finished

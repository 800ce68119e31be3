"""One trial over two CPU processes (gloo) matches one process on the same global batch.

Each run is a real process: two ranks get ``MASTER_ADDR``/``MASTER_PORT``/``WORLD_SIZE``/
``RANK``/``LOCAL_RANK`` (what ``torchrun`` and ``accelerate launch`` set), from which accelerate
starts a gloo process group; the reference run gets none of them. The tiny BERT has no dropout,
so the two runs differ only by float rounding.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import tiny

# One process of a run: run_trial on each config in turn, each one's losses and world size and
# every save_run call recorded.
RUN = """
import json, os, sys
from pathlib import Path
import torch.distributed as dist
import petscale.trial as trial

configs, out = json.loads(sys.argv[1]), Path(sys.argv[2])
rank = os.environ.get("RANK", "single")
losses, train, save_run = [], trial.train, trial.save_run

def recorded_train(*args, **kwargs):
    result = train(*args, **kwargs)
    losses.extend(result.losses)
    return result

def recorded_save_run(path, *args, **kwargs):
    (out / f"saved-by-{rank}-{path.name}").touch()
    return save_run(path, *args, **kwargs)

trial.train, trial.save_run = recorded_train, recorded_save_run
for i, config in enumerate(configs):
    losses.clear()
    result = trial.run_trial(config, out=out / f"run{i}")
    result = result.to_dict() if hasattr(result, "to_dict") else dict(result)
    world = dist.get_world_size() if dist.is_initialized() else 1
    record = {"result": result, "losses": losses, "world": world}
    (out / f"{rank}-{i}.json").write_text(json.dumps(record))
"""
DISTRIBUTED_ENV = ("MASTER_ADDR", "MASTER_PORT", "WORLD_SIZE", "RANK", "LOCAL_RANK")


@pytest.fixture(scope="module")
def no_dropout_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tiny.save_bert_folder(tmp_path_factory.mktemp("bert-no-dropout"))
    config = json.loads((folder / "config.json").read_text())
    config.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(configs: list[dict], out: Path, ranks: dict[str, str] | None = None) -> subprocess.Popen:
    out.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in DISTRIBUTED_ENV}
    env.update(OMP_NUM_THREADS="1", **(ranks or {}))
    command = [sys.executable, "-c", RUN, json.dumps(configs), str(out)]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def finish(processes: list[subprocess.Popen]) -> None:
    """Wait for every process; a failed or stuck one fails the test, and none is left behind
    (a rank whose peer died would wait on it)."""
    try:
        for process in processes:
            try:
                output, _ = process.communicate(timeout=180)
            except subprocess.TimeoutExpired:
                process.kill()
                output, _ = process.communicate()
            assert process.returncode == 0, output.decode(errors="replace")[-4000:]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()


def tensors(run: Path) -> dict[str, torch.Tensor]:
    files = sorted(run.glob("*.safetensors"))
    assert files, f"no tensors in {run}"
    return {f"{f.name}:{k}": v for f in files for k, v in load_file(f).items()}


def test_two_processes_take_the_step_one_process_takes(no_dropout_bert, toy_task, tmp_path):
    base = {
        "model": str(no_dropout_bert),
        "task": str(toy_task),
        "method": "lora",
        "steps": 6,
        "eval_every": 3,
        "lr": 1e-2,
        "max_length": 32,
    }
    # shares of each global batch: 4 + 4, 3 + 4 (weighted by size), 0 + 1 (rank 0 idle)
    configs = [base | {"batch_size": 8}, base | {"batch_size": 7}, base | {"batch_size": 1}]
    world = {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port()), "WORLD_SIZE": "2"}
    single = start(configs, tmp_path / "one")
    ranks = [
        start(configs, tmp_path / f"rank{r}", world | {"RANK": str(r), "LOCAL_RANK": str(r)})
        for r in (0, 1)
    ]
    finish([*ranks, single])

    for i in range(len(configs)):
        one = json.loads((tmp_path / "one" / f"single-{i}.json").read_text())
        two = [json.loads((tmp_path / f"rank{r}" / f"{r}-{i}.json").read_text()) for r in (0, 1)]
        assert (one["world"], two[0]["world"], two[1]["world"]) == (1, 2, 2)
        assert len(one["losses"]) == 6
        # every process logs the whole batch's loss, which is the single process's
        assert two[0]["losses"] == pytest.approx(one["losses"], rel=1e-5, abs=1e-6)
        assert two[1]["losses"] == two[0]["losses"]
        for key in ("dev_score", "test_score", "curve", "trainable_params", "head_params"):
            assert two[0]["result"][key] == two[1]["result"][key] == one["result"][key], key
        # the trained tensors: rank 0 wrote them, equal to the single process's
        trained, reference = (
            tensors(tmp_path / "rank0" / f"run{i}"),
            tensors(tmp_path / "one" / f"run{i}"),
        )
        assert trained.keys() == reference.keys()
        for key, value in reference.items():
            torch.testing.assert_close(trained[key], value, rtol=1e-4, atol=1e-5)
        lora_b = [v for k, v in reference.items() if k.endswith("lora_B")]
        assert lora_b and all(v.abs().max() > 0 for v in lora_b), "nothing trained"
        assert any("classifier" in key for key in reference)  # the trained head, compared too
    # only the main process writes a run folder
    names = {r: sorted(p.name for p in (tmp_path / f"rank{r}").iterdir()) for r in (0, 1)}
    runs = [f"run{i}" for i in range(len(configs))]
    assert [n for n in names[0] if n.startswith(("run", "saved"))] == runs + [
        f"saved-by-0-{run}" for run in runs
    ]
    assert names[1] == [f"1-{i}.json" for i in range(len(configs))]


def test_a_study_is_refused_under_a_distributed_launch(monkeypatch):
    from petscale.errors import UserError
    from petscale.study.runners import check_run_options

    monkeypatch.setenv("WORLD_SIZE", "2")  # as torchrun sets it in each process it starts
    with pytest.raises(UserError, match="a study runs from one process"):
        check_run_options()
    monkeypatch.setenv("WORLD_SIZE", "1")
    check_run_options()

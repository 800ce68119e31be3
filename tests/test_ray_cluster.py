"""A study on a Ray cluster of three nodes on this machine, one of them removed mid-trial.

``ray.cluster_utils.Cluster`` starts a real head and two real worker nodes (each its own raylet
and object store, one CPU each) in this machine's processes: the driver joins through
``--address`` as it would a remote cluster. What one machine cannot show: separate hosts, their
network and disks (docs/SCALING.md).
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import study_fake
from petscale.ids import trial_id
from petscale.study.runners import Events, run_study

TESTS = Path(__file__).parent
TRIAL = "test_ray_cluster:trial"  # this module, imported by the Ray workers
LOG = "PETSCALE_RAY_CLUSTER_LOG"
N = 6
STEPS = 2500  # each trial sleeps 2.5 s: long enough to be caught in flight


def trial(config: dict[str, Any]) -> dict[str, Any]:
    """The fake study trial, logging where it starts and where it ends."""
    import ray

    node = ray.get_runtime_context().get_node_id()
    log(f"start {trial_id(config)} {node}")
    result = study_fake.trial(config)  # sleeps steps / 1000 s
    log(f"end {trial_id(config)} {node}")
    return result


def log(line: str) -> None:
    with open(os.environ[LOG], "a") as f:  # one short append: atomic across processes
        f.write(line + "\n")


def lines(path: Path, kind: str) -> list[tuple[str, str]]:
    """(trial id, node id) of every ``kind`` line, in order."""
    text = path.read_text() if path.exists() else ""
    return [tuple(line.split()[1:]) for line in text.splitlines() if line.startswith(kind)]


class Recorder(Events):
    def __init__(self) -> None:
        self.claimed: list[str] = []
        self.outcomes: list[tuple[str, bool]] = []
        self.resends: list[tuple[str, str]] = []

    def started(self, tid: str, config: dict[str, Any]) -> None:
        self.claimed.append(tid)

    def ended(self, tid: str, config: dict[str, Any], outcome: dict[str, Any]) -> None:
        self.outcomes.append((tid, outcome["ok"]))

    def resent(self, tid: str, config: dict[str, Any], error: str) -> None:
        self.resends.append((tid, error))


@pytest.fixture
def cluster(monkeypatch, tmp_path):
    """A head and two worker nodes, one CPU each, in a Ray temp dir of their own (so no other
    ``ray.init()`` on this machine finds and joins them)."""
    ray = pytest.importorskip("ray")
    from ray.cluster_utils import Cluster

    temp = tempfile.mkdtemp(prefix="rc", dir="/tmp")  # short: Ray's socket paths must fit
    monkeypatch.setenv("RAY_TMPDIR", temp)
    # the raylets start the workers with this environment: the fake trial must import there
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])
    )
    monkeypatch.delenv("STUDY_FAKE_LOG", raising=False)
    monkeypatch.setenv(LOG, str(tmp_path / "runs.log"))
    cluster = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 1, "include_dashboard": False},
    )
    try:
        for _ in range(2):
            cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        yield cluster
    finally:
        ray.shutdown()
        cluster.shutdown()
        shutil.rmtree(temp, ignore_errors=True)


@pytest.mark.ray
def test_a_study_spreads_over_the_nodes_and_a_lost_node_loses_only_its_trial(cluster, tmp_path):
    spec = parse_spec_for_test()
    head = cluster.head_node.node_id
    first, doomed = sorted(cluster.worker_nodes, key=lambda node: node.node_id)
    killed: list[str] = []

    def remove_doomed_mid_trial() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            started = [
                tid for tid, node in lines(tmp_path / "runs.log", "start") if node == doomed.node_id
            ]
            if started:
                killed.append(started[0])
                cluster.remove_node(doomed, allow_graceful=False)  # as a crash would
                return
            time.sleep(0.05)

    remover = threading.Thread(target=remove_doomed_mid_trial, daemon=True)
    remover.start()
    events = Recorder()
    counts = run_study(
        tmp_path / "study", spec, trial=TRIAL, backend="ray", address=cluster.address, events=events
    )
    remover.join(timeout=5)

    assert killed, "no trial ever started on the node to remove: the study did not spread"
    assert counts["done"] == N and counts["failed"] == counts["pending"] == counts["running"] == 0
    lost = killed[0]
    starts, ends = lines(tmp_path / "runs.log", "start"), lines(tmp_path / "runs.log", "end")
    ids = {trial_id(config) for config in spec}
    # every trial ran to its end exactly once; only the lost one started twice
    assert sorted(tid for tid, _ in ends) == sorted(ids)
    assert sorted(tid for tid, _ in starts) == sorted([*ids, lost])
    assert [tid for tid, _ in events.resends] == [lost]
    assert "NodeDiedError" in events.resends[0][1]
    assert sorted(events.claimed) == sorted(ids)  # claimed once each
    assert sorted(events.outcomes) == sorted((tid, True) for tid in ids)
    # spread over the three nodes; the lost trial finished on a node that is still there
    assert {node for _, node in starts} == {head, first.node_id, doomed.node_id}
    assert dict(ends)[lost] in {head, first.node_id}
    assert doomed.node_id not in {node for _, node in ends}
    # the store: one done row per trial, each claimed once
    db = sqlite3.connect(tmp_path / "study" / "study.sqlite")
    rows = db.execute("SELECT id, status, attempts FROM trials").fetchall()
    db.close()
    assert sorted(rows) == sorted((tid, "done", 1) for tid in ids)

    # a rerun finds everything done and runs nothing
    again = Recorder()
    counts = run_study(tmp_path / "study", spec, trial=TRIAL, backend="ray", events=again)
    assert counts["done"] == N and again.claimed == []
    assert len(lines(tmp_path / "runs.log", "end")) == N


def parse_spec_for_test() -> list[dict[str, Any]]:
    from petscale.study.spec import expand, parse_spec

    spec = parse_spec(
        {
            "models": ["m"],
            "untuned": False,
            "tasks": ["t"],
            "methods": ["lora"],
            "budgets": [{"geom": [100, 100_000, N]}],
            "steps": STEPS,
            "eval_every": STEPS // 2,
        }
    )
    return expand(spec)

"""Runners in real processes: kill -9 mid-run then rerun, and two runners on one store."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import yaml

import petscale
from petscale.study.store import Store

TESTS = Path(__file__).parent
SRC = Path(petscale.__path__[0]).parent
CLI = "from petscale.cli.study import app; app()"
N = 10
SPEC = {
    "models": ["m"],
    "untuned": False,
    "tasks": ["t"],
    "methods": ["lora"],
    "budgets": [{"geom": [100, 100_000, N]}],
    "steps": 300,  # the fake trial sleeps 0.3 s
    "eval_every": 100,
}


def start(tmp_path: Path, *args: str, spec_data: dict = SPEC) -> subprocess.Popen:
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(spec_data))
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(SRC), str(TESTS)]),
        "STUDY_FAKE_LOG": str(tmp_path / "runs.log"),
    }
    command = [sys.executable, "-c", CLI, "run", str(spec), "--trial", "study_fake:trial"]
    return subprocess.Popen(
        [*command, "--out", str(tmp_path / "out"), *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group, so kill -9 reaches its workers too
    )


def query(tmp_path: Path, sql: str) -> list[tuple]:
    path = tmp_path / "out" / "study.sqlite"
    if not path.exists():
        return []
    db = sqlite3.connect(path, timeout=30)
    try:
        return db.execute(sql).fetchall()
    except sqlite3.OperationalError:  # tables not created yet
        return []
    finally:
        db.close()


def done_ids(tmp_path: Path) -> set[str]:
    return {tid for (tid,) in query(tmp_path, "SELECT id FROM trials WHERE status = 'done'")}


def runs(tmp_path: Path) -> list[str]:
    log = tmp_path / "runs.log"
    return [line.split()[0] for line in log.read_text().splitlines()] if log.exists() else []


def assert_consistent(tmp_path: Path) -> None:
    assert query(tmp_path, "PRAGMA integrity_check") == [("ok",)]
    # A done trial has its whole curve; nothing else has any.
    curves = dict(query(tmp_path, "SELECT trial_id, COUNT(*) FROM curve GROUP BY trial_id"))
    assert curves == {tid: 4 for tid in done_ids(tmp_path)}
    assert query(
        tmp_path, "SELECT COUNT(*) FROM trials WHERE status = 'done' AND dev_score IS NULL"
    ) == [(0,)]


def test_kill_9_mid_run_then_rerun_finishes_every_trial_once(tmp_path):
    for threshold in (2, 5):
        runner = start(tmp_path, "--workers", "2")
        deadline = time.monotonic() + 60
        while len(done_ids(tmp_path)) < threshold and runner.poll() is None:
            assert time.monotonic() < deadline, "the runner made no progress"
            time.sleep(0.05)
        os.killpg(runner.pid, signal.SIGKILL)
        runner.wait()
        assert_consistent(tmp_path)
        before, seen = done_ids(tmp_path), len(runs(tmp_path))
        assert 0 < len(before) < N

    final = start(tmp_path, "--workers", "2")
    assert final.wait(timeout=60) == 0, final.stdout.read().decode()
    assert_consistent(tmp_path)
    statuses = query(tmp_path, "SELECT status, COUNT(*) FROM trials GROUP BY status")
    assert statuses == [("done", N)]
    rerun = runs(tmp_path)[seen:]
    assert not set(rerun) & before  # what was done is not run again
    assert len(set(rerun)) == len(rerun) == N - len(before)


def test_two_runners_on_one_store_never_run_a_trial_twice(tmp_path):
    runners = [start(tmp_path) for _ in range(2)]
    for runner in runners:
        assert runner.wait(timeout=60) == 0, runner.stdout.read().decode()
    assert query(tmp_path, "SELECT status, COUNT(*) FROM trials GROUP BY status") == [("done", N)]
    assert sorted(runs(tmp_path)) == sorted(done_ids(tmp_path))
    pids = {line.split()[1] for line in (tmp_path / "runs.log").read_text().splitlines()}
    assert len(pids) == 2  # both runners took part


def test_a_trial_left_running_by_a_killed_run_is_taken_back(tmp_path):
    # One trial, so that nothing is pending on the rerun: only `running` (issue 10's repro).
    one = {**SPEC, "budgets": [100], "steps": 5000, "eval_every": 2500}  # sleeps 5 s
    runner = start(tmp_path, spec_data=one)
    deadline = time.monotonic() + 60
    while not query(tmp_path, "SELECT id FROM trials WHERE status = 'running'"):
        assert runner.poll() is None and time.monotonic() < deadline, "the trial never started"
        time.sleep(0.05)
    os.killpg(runner.pid, signal.SIGKILL)
    runner.wait()
    with Store.existing(tmp_path / "out") as store:  # status says the runner is gone
        summary = store.summary()
    assert summary["running"] == summary["stalled"] == 1

    rerun = start(tmp_path, spec_data=one)
    assert rerun.wait(timeout=120) == 0, rerun.stdout.read().decode()
    assert query(tmp_path, "SELECT status, attempts FROM trials") == [("done", 2)]

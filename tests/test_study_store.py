"""The store: atomic claims, one-transaction results, reclaiming trials of dead runners."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest

from petscale.errors import UserError
from petscale.study.spec import expand, parse_spec
from petscale.study.store import Owner, Store, trial_folder

SPEC = {
    "models": ["m"],
    "tasks": ["t"],
    "methods": ["lora"],
    "budgets": [10, 20, 30, 40],
    "untuned": False,
}
RESULT = {"dev_score": 0.8, "metric": "accuracy", "trainable_params": 10, "curve": [[0, 0.5]]}


def configs(seeds: int = 1) -> list[dict]:
    return expand(parse_spec({**SPEC, "seeds": list(range(seeds))}))


def test_queue_is_idempotent_and_a_changed_spec_adds_its_trials(tmp_path):
    with Store(tmp_path) as store:
        store.queue(configs())
        store.queue(configs())
        assert store.counts()["pending"] == 4
        store.queue(configs(seeds=2))
        assert store.counts()["pending"] == 8


def test_claims_from_many_threads_never_hand_out_a_trial_twice(tmp_path):
    with Store(tmp_path) as store:
        ids = store.queue(configs(seeds=10))
    claimed: list[str] = []

    def worker() -> None:
        with Store(tmp_path) as store:
            store.queue(configs(seeds=10))
            owner = Owner()
            while (got := store.claim(owner)) is not None:
                claimed.append(got[0])

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(claimed) == sorted(ids)


def test_finish_writes_the_row_and_its_curve_and_only_once(tmp_path):
    with Store(tmp_path) as store:
        store.queue(configs())
        owner = Owner()
        tid, _ = store.claim(owner)
        assert store.finish(tid, {**RESULT, "curve": [[0, 0.5], [10, 0.7]]})
        assert not store.finish(tid, RESULT)
        row = store.db.execute("SELECT * FROM trials WHERE id = ?", (tid,)).fetchone()
        assert (row["status"], row["dev_score"], row["attempts"]) == ("done", 0.8, 1)
        curve = store.db.execute("SELECT step, score FROM curve WHERE trial_id = ?", (tid,))
        assert [tuple(r) for r in curve] == [(0, 0.5), (10, 0.7)]


def test_running_trials_of_a_dead_process_are_reclaimed(tmp_path):
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        text=True,
        capture_output=True,
        check=True,
    )
    with Store(tmp_path) as store:
        store.queue(configs())
        first, _ = store.claim(Owner(pid=int(dead.stdout)))
        again, _ = store.claim(Owner())
        assert again == first
        assert (
            store.db.execute("SELECT attempts FROM trials WHERE id = ?", (first,)).fetchone()[0]
            == 2
        )


def test_running_trials_past_their_lease_are_reclaimed_unless_renewed(tmp_path):
    with Store(tmp_path, lease_s=0.2) as store:
        store.queue(configs())
        remote = Owner(host="another-host")
        first, _ = store.claim(remote)
        time.sleep(0.1)
        store.heartbeat(remote)
        time.sleep(0.15)
        assert store.claim(Owner())[0] != first  # renewed: still the other host's
        time.sleep(0.25)
        assert store.claim(Owner())[0] == first  # lease expired: taken back


def test_failed_trials_keep_their_error_until_retried(tmp_path):
    with Store(tmp_path) as store:
        store.queue(configs())
        owner = Owner()
        tid, _ = store.claim(owner)
        store.fail(tid, owner, "RuntimeError: no", "Traceback ...")
        assert store.counts()["failed"] == 1
        assert store.retry_failed() == 1
        assert store.claim(owner)[0] == tid


def test_release_puts_running_trials_back(tmp_path):
    with Store(tmp_path) as store:
        store.queue(configs())
        owner = Owner()
        store.claim(owner)
        store.release(owner)
        assert store.counts()["pending"] == 4


def test_only_a_trial_id_names_a_trial_folder_and_never_through_a_link(tmp_path):
    # A handed-over store could name "../../somewhere" as a trial; reading its "delta" from
    # outside the study would follow whatever model and data that folder names.
    assert trial_folder(tmp_path, "0123456789abcdef") == tmp_path / "trials" / "0123456789abcdef"
    for crafted in ("../../etc", "/abs/dir", "0123456789ABCDEF", "0123456789abcdef/.."):
        with pytest.raises(UserError, match="not a trial id"):
            trial_folder(tmp_path, crafted)
    (tmp_path / "trials").mkdir()
    (tmp_path / "trials" / "0123456789abcdef").symlink_to(tmp_path)
    with pytest.raises(UserError, match="is a link"):
        trial_folder(tmp_path, "0123456789abcdef")

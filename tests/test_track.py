"""Experiment trackers: a tune logs its dev curve to TensorBoard; the trial id ignores it."""

from __future__ import annotations

import json

import pytest

import petscale
from petscale.errors import UserError
from petscale.tracking import ENV_DIR, ENV_TRACK, Tracking


def _accumulators(folder):
    """Each TensorBoard event file under ``folder``, read."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = sorted(folder.rglob("events.out.tfevents.*"))
    assert events, f"no event file under {folder}"
    for event in events:
        acc = EventAccumulator(str(event))
        acc.Reload()
        yield acc


def _scalars(folder):
    values = {}
    for acc in _accumulators(folder):
        for tag in acc.Tags()["scalars"]:
            values[tag] = [(s.step, s.value) for s in acc.Scalars(tag)]
    return values


def test_a_tune_with_tensorboard_writes_its_dev_curve(tiny_bert, toy_task, tmp_path):
    pytest.importorskip("tensorboard")
    track_dir = tmp_path / "tb"
    result = petscale.tune(
        model=str(tiny_bert),
        task=str(toy_task),
        method="lora",
        rank=2,
        steps=4,
        eval_every=2,
        batch_size=8,
        max_length=16,
        out=tmp_path / "run",
        track="tensorboard",
        track_dir=track_dir,
    )
    scalars = _scalars(track_dir)
    assert [step for step, _ in scalars["dev_score"]] == [2, 4]
    curve = [score for _, score in scalars["dev_score"]]
    assert curve == pytest.approx([score for _, score in result["curve"]])
    assert [step for step, _ in scalars["train_loss"]] == [1, 2, 3, 4]
    # what ran each step: its learning rate (warmup, then linear decay) and gradient norm
    assert [step for step, _ in scalars["lr"]] == [1, 2, 3, 4]
    assert scalars["lr"][0][1] == pytest.approx(result["lr"])  # one warmup step, then decay
    assert scalars["lr"][-1][1] < scalars["lr"][0][1]
    assert all(norm > 0 for _, norm in scalars["grad_norm"])
    assert scalars["test_score"] == [(4, pytest.approx(result["test_score"]))]
    # Tracking is not part of the trial: the saved config does not mention it.
    trial = json.loads((tmp_path / "run" / "trial.json").read_text())
    assert "track" not in json.dumps(trial)


def test_without_tracking_nothing_is_written(tiny_bert, toy_task, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    petscale.tune(model=str(tiny_bert), task=str(toy_task), steps=1, max_length=16)
    assert not (tmp_path / "runs").exists()


def test_study_workers_get_tracking_from_the_environment(tmp_path, monkeypatch):
    pytest.importorskip("tensorboard")
    tracking = Tracking.of(["tensorboard"], tmp_path)
    for key, value in tracking.env().items():
        monkeypatch.setenv(key, value)
    assert Tracking.from_env() == tracking
    monkeypatch.delenv(ENV_TRACK)
    monkeypatch.delenv(ENV_DIR)
    assert Tracking.from_env() is None


def test_an_unknown_tracker_is_a_user_error():
    with pytest.raises(UserError, match="unknown tracker 'tensorbored'"):
        Tracking.of("tensorbored", None)


def test_a_study_logs_each_trial_and_its_ids_do_not_change(
    tiny_bert, toy_task, tmp_path, monkeypatch
):
    pytest.importorskip("tensorboard")
    from typer.testing import CliRunner

    from petscale.cli.study import app
    from petscale.study.spec import expand, load_spec, trial_id
    from petscale.study.store import Store

    for key in (ENV_TRACK, ENV_DIR):  # the command sets them; restored after the test
        monkeypatch.setenv(key, "")
    spec = tmp_path / "s.yaml"
    spec.write_text(
        f"models: [{tiny_bert}]\ntasks: [{toy_task}]\nmethods: [{{lora: {{rank: 2}}}}]\n"
        "steps: 2\neval_every: 1\nbatch_size: 8\nmax_length: 16\nseeds: [0, 1]\n"
    )
    folder, track_dir = tmp_path / "study", tmp_path / "tb"
    args = ["run", str(spec), "--out", str(folder), "--track", "tensorboard"]
    done = CliRunner().invoke(app, [*args, "--track-dir", str(track_dir)])
    assert done.exit_code == 0, done.output
    with Store.existing(folder) as store:
        ids = {row["id"] for row in store.rows()}
    configs = expand(load_spec(spec))
    assert ids == {trial_id(config) for config in configs}
    # the spec adds an untuned trial per seed (the floor): it takes no step
    untuned = {trial_id(c) for c in configs if c["method"] == "untuned"}
    assert len(untuned) == 2 and len(ids) == 4
    # One folder per trial (its hyperparameters go to a sub-folder of it).
    runs = sorted(p.parent for p in track_dir.glob("*/events.out.tfevents.*"))
    assert {run.name.rsplit("-", 1)[-1] for run in runs} == ids
    for run in runs:
        scalars = _scalars(run)
        if run.name.rsplit("-", 1)[-1] in untuned:  # its results, at step 0
            assert scalars["test_score"][0][0] == 0 and scalars["trainable_params"] == [(0, 0)]
            assert [step for step, _ in scalars["dev_score"]] == [0]  # its floor score
        else:
            assert [step for step, _ in scalars["dev_score"]] == [1, 2]


def _hparams(folder):
    from tensorboard.plugins.hparams import plugin_data_pb2

    found = {}
    for acc in _accumulators(folder):
        try:
            contents = acc.PluginTagToContent("hparams").values()
        except KeyError:  # an event file of scalars only
            continue
        for content in contents:
            data = plugin_data_pb2.HParamsPluginData.FromString(content)
            for key, value in data.session_start_info.hparams.items():
                found[key] = value.WhichOneof("kind") and getattr(value, value.WhichOneof("kind"))
    return found


def test_trackers_get_the_settings_as_run_in_one_run_folder(tiny_bert, toy_task, tmp_path):
    pytest.importorskip("tensorboard")
    track_dir = tmp_path / "tb"
    result = petscale.tune(
        model=str(tiny_bert),
        task=str(toy_task),
        method="apet",
        budget=50,
        steps=2,
        batch_size=8,
        max_length=16,
        track="tensorboard",
        track_dir=track_dir,
    )
    runs = {event.parent for event in track_dir.rglob("events.out.tfevents.*")}
    assert len(runs) == 1  # the hparams live in the trial's own run, not a sub-run
    hparams = _hparams(track_dir)
    assert hparams["lr"] == pytest.approx(result["lr"])  # the method's default, not None
    assert hparams["schedule"] == result["schedule"]
    assert hparams["options.budget"] == 50 and hparams["steps"] == 2
    assert hparams["pooling"] in ("cls", "mean")

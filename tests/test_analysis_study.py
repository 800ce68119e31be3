"""Every analysis end to end on a real tiny study: two tiny BERTs, two toy tasks, the methods
at their defaults and APET's two patterns on a budget grid, deltas kept."""

from __future__ import annotations

from pathlib import Path

import pytest

import tiny
from petscale import analysis as A
from petscale import deltas
from petscale.study.runners import run_study
from petscale.study.spec import expand, parse_spec

COMMON = {"steps": 8, "batch_size": 16, "max_length": 16, "eval_every": 4}
LR = {"full": 1e-3, "probe": 1e-2, "lora": 1e-2, "apet": 1e-2}
BUDGETS = [50, 5000]


@pytest.fixture(scope="module")
def wide_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A second tiny BERT, wider than ``tiny_bert``: a second model size."""
    return tiny.save_bert_folder(tmp_path_factory.mktemp("wide-bert"), hidden=48)


@pytest.fixture(scope="module")
def toy_task_2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Another two-class task with the same labels as ``toy_task``, other filler words."""
    fillers = ["our", "one", "song", "album", "band", "singer", "track", "tune", "is", "so"]
    return tiny.write_toy_task(tmp_path_factory.mktemp("toy-task-2"), fillers, seed=1)


@pytest.fixture(scope="module")
def study(tiny_bert: Path, wide_bert: Path, toy_task: Path, toy_task_2: Path, tmp_path_factory):
    folder = tmp_path_factory.mktemp("study")
    models = [str(tiny_bert), str(wide_bert)]
    grid = parse_spec(
        {
            "models": models,
            "tasks": [str(toy_task)],
            "methods": [
                "full",
                "probe",
                {"lora": {"rank": 2}},
                {"apet": {"pattern": "adjacent", "budgets": BUDGETS}},
                {"apet": {"pattern": "discrete", "budgets": BUDGETS}},
            ],
            "lr": LR,
            **COMMON,
        }
    )
    other = parse_spec(
        {"models": models, "tasks": [str(toy_task_2)], "methods": {"lora": {"rank": 2}}, "lr": LR}
        | COMMON
    )
    configs = expand(grid) + expand(other)
    counts = run_study(folder, configs, keep_deltas=True, cpus_per_trial=1)
    # 7 trials per model on the first task, lora on the second, and an untuned trial (the
    # floor) per (model, task): one head mode here, so one untuned trial serves every method
    assert counts["done"] == len(configs) == 2 * 7 + 2 + 2 * 2
    return folder


def test_the_table_of_a_real_study(study, toy_task):
    df = A.load_results(study)
    assert len(df) == 20
    structures = {"full", "probe", "lora", "apet-adjacent", "apet-discrete", "untuned"}
    assert set(df["structure"]) == structures
    untuned = df[df["method"] == "untuned"]
    assert (untuned["steps"].isna()).all() and (untuned["trainable_params"] == 0).all()
    assert df["dev_examples"].gt(0).all() and df["dev_majority"].between(0.5, 1).all()
    apet = df[df["method"] == "apet"]
    assert sorted(set(apet["budget"])) == BUDGETS
    assert (
        not apet["default_budget"].any() and df.loc[df["method"] == "lora", "default_budget"].all()
    )
    assert (df.loc[df["method"] == "probe", "budget"] == 0).all()
    full = df[df["method"] == "full"]
    assert (full["budget"] == full["trainable_params"]).all()
    assert set(df["task_type"]) == {"custom"}
    tuned = df[df["method"] != "untuned"]
    assert (tuned["curve"].map(len) == 2).all()  # evaluated at steps 4 and 8
    assert (untuned["curve"].map(list) == untuned["dev_score"].map(lambda v: [(0, v)])).all()
    assert df["dev_score"].between(0, 1).all()


def test_every_analysis_runs_on_the_real_study(study, toy_task, toy_task_2):
    df = A.load_results(study)
    cells = A.aggregate(df)
    assert (cells["n"] == 1).all()
    refs = A.reference_lines(df).set_index("task")
    assert (
        refs.loc[str(toy_task), ["full", "probe", "floor", "untuned", "majority"]]
        .notna()
        .all()
        .all()
    )
    assert (refs["floor"] >= refs[["majority", "untuned"]].max(axis=1) - 1e-9).all()
    assert refs.loc[str(toy_task_2), ["full", "probe"]].isna().all().all()  # lora only there
    thr = A.thresholds(df)
    assert len(thr) == 4  # 2 models x the two APET patterns (lora ran at one budget)
    assert set(thr["random_guess"]) == {0.5}
    assert set(thr["floor_kind"]) <= {"untuned", "majority"}
    assert thr["low_status"].isin(["bracketed", "at or below the grid", "not reached"]).all()
    g = A.gaps(df)
    assert set(g["budget_kind"]) == {"default", "matched"}
    trend = A.gap_trend(g)
    assert (trend["n_models"] == 2).all()
    assert set(trend["direction"]) <= {"shrinks", "grows", "flat"}
    speed = A.pattern_speed(A.convergence(df))
    assert len(speed) == 2 * len(BUDGETS)
    types = A.by_task_type(thr, g)
    assert list(types["task_type"]) == ["custom"]
    found = A.findings(df)
    assert [f.key for f in found] == [
        "methods_converge", "gap_shrinks", "thresholds_exist", "thresholds_alike",
        "low_alike_across_tasks", "thresholds_fall", "adjacent_faster", "transfer_within_type",
    ]  # fmt: skip
    assert all(f.verdict in A.VERDICTS for f in found)
    # one seed, two models 1.3x apart, 8 steps: nothing here can bear a scale claim
    scale = {f.key: f.verdict for f in found}
    assert scale["methods_converge"] != "holds" and scale["thresholds_fall"] != "holds"
    assert A.score_vs_params_figure(df) is not None
    assert A.convergence_figure(df) is not None


def test_transfer_between_the_two_tasks(study, toy_task, toy_task_2):
    scores = deltas.evaluate_transfer(study, structures=["lora"], limit=20)
    assert len(scores) == 2 * 2 * 2  # 2 models x 2 source tasks x 2 targets
    matrix = A.transfer_matrix(scores)
    diagonal = matrix[matrix["source"] == matrix["target"]]
    assert (diagonal["relative"].dropna() == 1.0).all()
    # The in-task score of the transfer table is the study's own dev score on those examples.
    df = A.load_results(study)
    mine = scores[scores["source"] == scores["target"]]
    assert mine["score"].between(0, 1).all() and len(df) == 20
    split = A.same_type_vs_cross(matrix, {str(toy_task): "custom", str(toy_task_2): "custom"})
    assert list(split["kind"].unique()) == ["same type"]
    found = {f.key: f for f in A.findings(df, matrix)}
    assert found["transfer_within_type"].verdict == "not tested"  # one task type only
    assert A.transfer_figure(matrix) is not None or matrix["relative"].isna().all()


def test_transfer_scores_the_trials_own_evaluation(study, tiny_bert, toy_task, tmp_path):
    """Transfer scores a split as the trial does (``trial.Evaluation``): with the study's eval
    limit (here none: the whole dev split) a delta's in-task score is its trial's dev score;
    with ``limit`` the seeded subset a trial with ``eval_limit: limit`` scores, not the first
    ``limit`` examples."""
    task = str(toy_task)
    whole = deltas.evaluate_transfer(study, pairs=[(task, task)], structures=["lora"])
    dev = A.load_results(study).set_index("trial_id")["dev_score"]
    assert len(whole) == 2  # one lora delta per model on the task
    assert list(whole["score"]) == pytest.approx(list(dev[whole["trial_id"]]), abs=1e-9)
    folder = tmp_path / "limited"
    spec = {"models": [str(tiny_bert)], "tasks": [task], "methods": ["lora"], "lr": LR}
    configs = expand(parse_spec({**spec, **COMMON, "eval_limit": 12}))
    assert run_study(folder, configs, keep_deltas=True, cpus_per_trial=1)["done"] == len(configs)
    scored = deltas.evaluate_transfer(folder, limit=12, structures=["lora"])
    trial = A.load_results(folder).set_index("trial_id").loc[scored["trial_id"].item()]
    assert trial["dev_examples"] == 12
    assert scored["score"].item() == pytest.approx(trial["dev_score"], abs=1e-9)


def test_transfer_to_a_task_the_study_never_tuned_on(study, toy_task, tmp_path):
    unseen = str(tiny.write_toy_task(tmp_path, ["a", "the", "film", "movie", "was", "it"], 2))
    scores = deltas.evaluate_transfer(
        study, structures=["lora"], limit=20, targets=[unseen, toy_task]
    )
    assert set(scores["target"]) == {unseen, str(toy_task)}
    assert len(scores) == 2 * 2 * 2  # 2 models x 2 source tasks x the 2 targets given
    matrix = A.transfer_matrix(scores).set_index(["source", "target"])
    # No delta was tuned on the unseen task: its in-task score, hence relative, is unknown.
    into_unseen = matrix.xs(unseen, level="target")
    assert into_unseen[["in_task", "relative"]].isna().all().all()
    assert into_unseen["score"].between(0, 1).all()
    assert matrix.loc[(str(toy_task), str(toy_task)), "in_task"].notna().all()


def test_subspaces_of_the_kept_deltas(study):
    table = deltas.subspace_table(study, k=2)
    assert table["mean_cos"].between(0, 1 + 1e-9).all()
    assert table["random_cos"].between(0, 1).all()
    assert (table["k"] <= 2).all()
    pairs = set(zip(table["structure_a"], table["structure_b"], strict=True))
    # LoRA and both APET patterns write to the query weights; so does full fine-tuning.
    assert {("full", "lora"), ("lora", "apet-adjacent"), ("lora", "apet-discrete")} <= pairs
    assert table["weight"].str.endswith("attention.self.query.weight").any()
    only = deltas.subspace_table(study, k=2, structures=["lora"])
    assert set(only["differs"]) == {"task"}  # lora on the two tasks, per model


def test_label_word_heads_transfer_across_label_sets(tiny_bert, toy_task, tmp_path):
    """A head of label words takes the target's words: a delta tuned on (good, bad) is scored
    on a three-class task of other words; a frozen head is scored on its own label set only."""
    (tmp_path / "t").mkdir()
    other = tiny.write_toy_task(tmp_path / "t", ["a", "the", "it"], 3, ("red", "green", "blue"))
    folder = tmp_path / "study"
    configs = []
    for head in ("label-words", "frozen"):
        spec = {"models": [str(tiny_bert)], "tasks": [str(toy_task), str(other)], "head": head}
        spec["untuned"] = False  # the transfer scores the untuned models itself
        configs += expand(parse_spec({**spec, "methods": ["lora"], "lr": LR} | COMMON))
    assert run_study(folder, configs, keep_deltas=True, cpus_per_trial=1)["done"] == 4
    scores = deltas.evaluate_transfer(folder, limit=20, untuned=True, progress=True)
    untuned = scores[scores["source"] == "untuned"]
    # one untuned model per head set-up (label words; the frozen head of seed 0), per target
    assert len(untuned) == 2 * 2 and untuned["score"].between(0, 1).all()
    scores = scores[scores["source"] != "untuned"]
    head_of = A.load_results(folder).set_index("trial_id")["head"]
    pairs = {(head_of[t], s, g) for t, s, g in scores[["trial_id", "source", "target"]].values}
    cross = {(str(toy_task), str(other)), (str(other), str(toy_task))}
    assert {("label-words", s, g) for s, g in cross} <= pairs
    assert not {("frozen", s, g) for s, g in cross} & pairs
    assert scores["score"].between(0, 1).all()
    three = scores[scores["target"] == str(other)]
    assert set(three["random_guess"]) == {1 / 3}
    assert (
        A.transfer_matrix(deltas.evaluate_transfer(folder, limit=20, untuned=True))["untuned"]
        .notna()
        .all()
    )

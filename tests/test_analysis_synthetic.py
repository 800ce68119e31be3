"""The analyses on planted result sets whose answers are known in closed form."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from petscale import analysis as A
from petscale.analysis.stats import t_quantile

RANDOM, FULL, TOL, SPREAD = 0.25, 0.85, 0.01, 0.01  # SPREAD: seeds at mean -/0/+ SPREAD
HALF = 4.303 * SPREAD / math.sqrt(3)  # the 95% half-width over three such seeds
SLOPE = 0.2  # score per decade of budget
LOW_X = 2.5  # planted log10 low threshold of apet-adjacent on the small model
SHIFT = {"apet-adjacent": 0.0, "apet-discrete": 0.2}
MODELS = {"small": (1e7, 0.0), "big": (1e8, -0.6)}  # total params, threshold shift (decades)
LORA = {"small": 0.80, "big": 0.84}  # lora at its default budget: gap 0.05 -> 0.01


def planted_x(kind: str, structure: str, model: str) -> float:
    """log10 of the planted threshold: low where mean - HALF = RANDOM, high at FULL - TOL."""
    x_low = LOW_X + SHIFT[structure] + MODELS[model][1]
    return x_low if kind == "low" else x_low + (FULL - TOL - RANDOM - HALF) / SLOPE


def mean_score(x: float, structure: str, model: str) -> float:
    # Linear in log budget around both thresholds: interpolation finds them exactly.
    return max(0.05, RANDOM + HALF + SLOPE * (x - planted_x("low", structure, model)))


def records(seeds: tuple[int, ...] = (0, 1, 2)) -> list[dict]:
    offsets = {0: -SPREAD, 1: 0.0, 2: SPREAD} if len(seeds) == 3 else {s: 0.0 for s in seeds}
    base = {"task": "t1", "task_type": "sentiment", "random_guess": RANDOM, "metric": "accuracy"}
    rows = []
    for model, (size, _) in MODELS.items():
        common = {**base, "model": model, "total_params": size}
        for seed in seeds:
            rows.append(
                {
                    **common,
                    "method": "full",
                    "seed": seed,
                    "dev_score": FULL,
                    "trainable_params": size,
                }
            )
            rows.append(
                {**common, "method": "probe", "seed": seed, "dev_score": 0.4, "trainable_params": 0}
            )
            rows.append(
                {
                    **common,
                    "method": "lora",
                    "seed": seed,
                    "dev_score": LORA[model],
                    "trainable_params": 73728,
                    "default_budget": True,
                }
            )
            for structure, pattern in (
                ("apet-adjacent", "adjacent"),
                ("apet-discrete", "discrete"),
            ):
                reach = 20 if pattern == "adjacent" else 60  # steps to the full score
                for x in range(1, 7):
                    score = mean_score(x, structure, model) + offsets[seed]
                    curve = [(s, score * min(1.0, s / reach)) for s in range(0, 101, 10)]
                    rows.append(
                        {
                            **common,
                            "method": "apet",
                            "pattern": pattern,
                            "seed": seed,
                            "trainable_params": 10**x,
                            "dev_score": score,
                            "curve": curve,
                        }
                    )
    return rows  # fmt: skip


@pytest.fixture(scope="module")
def df() -> pd.DataFrame:
    return A.from_records(records())


def test_from_records_fills_structure_budget_and_defaults(df):
    apet = df[df["method"] == "apet"]
    assert set(apet["structure"]) == {"apet-adjacent", "apet-discrete"}
    assert (apet["budget"] == apet["trainable_params"]).all()
    assert df.loc[df["method"] == "full", "default_budget"].all()
    assert not apet["default_budget"].any()
    assert A.from_records([{"model": "m", "task": "t", "method": "apet"}])["pattern"][0] == (
        "discrete"
    )


def test_aggregate_gives_the_t_interval_and_the_single_seed_margin(df):
    cells = A.aggregate(df)
    cell = cells[(cells["structure"] == "apet-adjacent") & (cells["budget"] == 1000)].iloc[0]
    assert cell["n"] == 3
    assert cell["std"] == pytest.approx(SPREAD)
    assert cell["ci_high"] - cell["mean"] == pytest.approx(HALF, rel=1e-3)
    one = A.aggregate(A.from_records(records(seeds=(0,))))
    assert (one["n"] == 1).all()
    assert (one["ci_high"] - one["mean"]).to_numpy() == pytest.approx(A.SINGLE_SEED_MARGIN)
    assert t_quantile(40) == pytest.approx(2.021, abs=2e-3)  # past the table


def test_reference_lines(df):
    refs = A.reference_lines(df).set_index("model")
    assert refs.loc["small", "full"] == pytest.approx(FULL)
    assert refs.loc["small", "probe"] == pytest.approx(0.4)
    assert refs.loc["small", "random_guess"] == pytest.approx(RANDOM)
    no_probe = A.reference_lines(df[df["method"] != "probe"])
    assert no_probe["probe"].isna().all()


@pytest.mark.parametrize("model", list(MODELS))
@pytest.mark.parametrize("structure", list(SHIFT))
def test_planted_thresholds_are_found(df, model, structure):
    thr = A.thresholds(df, tolerance=TOL).set_index(["model", "structure"])
    row = thr.loc[(model, structure)]
    for side in ("low", "high"):
        assert math.log10(row[side]) == pytest.approx(planted_x(side, structure, model), abs=1e-3)
        assert row[f"{side}_bracketed"]
    assert row["n_seeds"] == 3
    assert row["full_score"] == pytest.approx(FULL)


def test_one_seed_uses_the_stated_margin():
    single = A.from_records(records(seeds=(1,)))
    thr = A.thresholds(single, margin=0.05).set_index(["model", "structure"])
    # With one seed the low threshold is where score - margin = random guess.
    x = planted_x("low", "apet-adjacent", "small") + (0.05 - HALF) / SLOPE
    assert math.log10(thr.loc[("small", "apet-adjacent"), "low"]) == pytest.approx(x, abs=1e-3)


def test_unreached_and_unbracketed_thresholds(df):
    high_bar = df.copy()
    high_bar.loc[high_bar["method"] == "full", "dev_score"] = 2.0  # never reached
    thr = A.thresholds(high_bar)
    assert thr["high"].isna().all() and not thr["high_bracketed"].any()
    above = df[(df["method"] != "apet") | (df["budget"] >= 10**4)]
    thr = A.thresholds(above).set_index(["model", "structure"])
    assert thr.loc[("small", "apet-adjacent"), "low"] == 10**4  # the grid's first budget
    assert not thr.loc[("small", "apet-adjacent"), "low_bracketed"]


def test_structures_agree_within_the_factor_and_a_far_one_does_not(df):
    agree = A.structure_agreement(A.thresholds(df)).set_index("model")
    assert agree.loc["small", "low_spread_decades"] == pytest.approx(0.2, abs=1e-3)
    assert agree.loc["small", "low_agree"] and agree.loc["small", "high_agree"]
    far = df.copy()
    far.loc[far["structure"] == "apet-discrete", "budget"] *= 100  # two decades away
    agree = A.structure_agreement(A.thresholds(far)).set_index("model")
    assert agree.loc["small", "low_spread_decades"] == pytest.approx(2.2, abs=1e-3)
    assert not agree.loc["small", "low_agree"]


def test_a_planted_gap_trend_has_the_right_sign(df):
    g = A.gaps(df)
    lora = g[(g["structure"] == "lora") & (g["budget_kind"] == "default")].set_index("model")
    assert lora.loc["small", "gap"] == pytest.approx(0.05)
    assert lora.loc["big", "gap"] == pytest.approx(0.01)
    trend = A.gap_trend(g).set_index(["structure", "budget_kind"])
    assert trend.loc[("lora", "default"), "slope"] == pytest.approx(-0.04)
    assert trend.loc[("lora", "default"), "direction"] == "shrinks"
    assert {"apet-adjacent", "apet-discrete"} <= set(
        g.loc[g["budget_kind"] == "matched", "structure"]
    )
    grows = df.copy()
    grows.loc[(grows["method"] == "lora") & (grows["model"] == "big"), "dev_score"] = 0.70
    trend = A.gap_trend(A.gaps(grows)).set_index(["structure", "budget_kind"])
    assert trend.loc[("lora", "default"), "direction"] == "grows"
    one_model = A.gap_trend(A.gaps(df[df["model"] == "small"]))
    assert set(one_model["direction"]) == {"n/a"}


def test_a_partial_grid_is_compared_on_the_budgets_every_model_ran(df):
    # The big model ran APET only at its three largest budgets, where the gap is smallest: on
    # the shared budgets the trend is the planted one, not an artefact of the missing ones.
    partial = df[~((df["model"] == "big") & (df["method"] == "apet") & (df["budget"] < 10**4))]
    g = A.gaps(partial)
    matched = g[(g["budget_kind"] == "matched") & (g["structure"] == "apet-adjacent")]
    shared = matched[matched["budget"] >= 10**4].groupby("total_params")["gap"].mean()
    expected = np.polyfit(np.log10(shared.index.to_numpy(float)), shared.to_numpy(), 1)[0]
    trend = A.gap_trend(g).set_index(["structure", "budget_kind"])
    assert trend.loc[("apet-adjacent", "matched"), "slope"] == pytest.approx(expected)
    every = matched.groupby("total_params")["gap"].mean()  # what averaging every budget gives
    assert np.polyfit(np.log10(every.index.to_numpy(float)), every.to_numpy(), 1)[0] < expected


def test_convergence_and_the_faster_pattern(df):
    conv = A.convergence(df)
    adjacent = conv[conv["structure"] == "apet-adjacent"]
    assert (adjacent["steps_to_fraction"] == 20).all()
    assert (conv.loc[conv["structure"] == "apet-discrete", "steps_to_fraction"] == 60).all()
    # Adjacent: the ramp to step 20 then flat over 100 steps -> mean 0.9 of the best.
    assert (adjacent["auc"] / adjacent["best"]).to_numpy() == pytest.approx(0.9)
    speed = A.pattern_speed(conv)
    assert len(speed) == 12 and (speed["faster"] == "adjacent").all()


def test_transfer_matrix_relative_scores_and_type_split():
    scores = pd.DataFrame(
        [
            {"model": "m", "source": s, "target": t, "score": v, "random_guess": 0.5}
            for s, t, v in [
                ("a", "a", 0.9), ("b", "a", 0.8), ("c", "a", 0.5),
                ("b", "b", 0.7), ("a", "b", 0.65), ("c", "b", 0.55),
            ]
        ]
    )  # fmt: skip
    matrix = A.transfer_matrix(scores).set_index(["source", "target"])
    assert matrix.loc[("b", "a"), "relative"] == pytest.approx(0.75)
    assert matrix.loc[("a", "b"), "relative"] == pytest.approx(0.75)
    assert matrix.loc[("a", "a"), "relative"] == pytest.approx(1.0)
    split = A.same_type_vs_cross(matrix.reset_index(), {"a": "x", "b": "x", "c": "y"})
    split = split.set_index("kind")
    assert split.loc["same type", "mean_relative"] == pytest.approx(0.75)
    assert split.loc["cross type", "mean_relative"] == pytest.approx(0.125)
    assert split.loc["same type", "n_pairs"] == 2


def test_the_untuned_models_score_is_the_floor_of_relative_transfer():
    """A delta that scores what the untuned model already does transferred nothing, however
    far above random guessing both are."""
    rows = [("a", "a", 0.9), ("b", "a", 0.7), ("untuned", "a", 0.7), ("untuned", "a", 0.6)]
    scores = pd.DataFrame(
        [
            {"model": "m", "source": s, "target": t, "score": v, "random_guess": 0.5}
            for s, t, v in rows
        ]
    )
    matrix = A.transfer_matrix(scores).set_index(["source", "target"])
    assert "untuned" not in matrix.index.get_level_values("source")
    assert matrix.loc[("b", "a"), "untuned"] == pytest.approx(0.65)  # mean over its seeds
    assert matrix.loc[("b", "a"), "relative"] == pytest.approx((0.7 - 0.65) / (0.9 - 0.65))
    without = A.transfer_matrix(scores[scores["source"] != "untuned"])
    assert without.set_index("source").loc["b", "relative"] == pytest.approx(0.5)


def test_one_threshold_per_task_type_or_not(df):
    topic = df.assign(task="t2", task_type="topic")
    topic.loc[topic["method"] == "apet", "budget"] *= 1000  # three decades higher
    both = pd.concat([df, topic], ignore_index=True)
    types = A.by_task_type(A.thresholds(both), A.gaps(both)).set_index("task_type")
    assert list(types.index) == ["sentiment", "topic"]
    assert types["low_spread_decades"].iloc[0] == pytest.approx(3.0, abs=1e-6)
    assert not types["one_low"].iloc[0]
    same = A.by_task_type(A.thresholds(df), A.gaps(df))
    assert math.isnan(same["low_spread_decades"].iloc[0])  # one type: nothing to compare


def test_findings_on_the_planted_study(df):
    verdicts = {f.key: f for f in A.findings(df)}
    assert verdicts["gaps_shrink"].verdict == "holds"
    assert verdicts["thresholds_exist"].verdict == "holds"
    assert verdicts["thresholds_alike"].verdict == "holds"
    assert verdicts["thresholds_fall"].verdict == "holds"
    assert verdicts["adjacent_faster"].verdict == "holds"
    assert verdicts["transfer_within_type"].verdict == "not tested"
    assert all(f.n_seeds in (0, 3) for f in verdicts.values())
    assert "12 of 12" in verdicts["adjacent_faster"].evidence
    flipped = df.copy()
    flipped["structure"] = flipped["structure"].replace(
        {"apet-adjacent": "apet-discrete", "apet-discrete": "apet-adjacent"}
    )
    assert {f.key: f for f in A.findings(flipped)}["adjacent_faster"].verdict == "does not hold"


def test_figures_draw_and_decline_without_data(df, tmp_path):
    thr = A.thresholds(df)
    matrix = A.transfer_matrix(
        pd.DataFrame({"model": "m", "source": ["a", "a"], "target": ["a", "b"],
                      "score": [0.9, 0.7], "random_guess": 0.5})
    )  # fmt: skip
    figures = {
        "score": A.score_vs_params_figure(df),
        "gaps": A.gaps_figure(A.gaps(df)),
        "thresholds": A.thresholds_figure(thr),
        "convergence": A.convergence_figure(df),
        "transfer": A.transfer_figure(matrix),
        "spectra": A.spectra_figure({"rank 2": np.diag([3.0, 1.0, 0.0])}),
    }
    for name, fig in figures.items():
        assert fig is not None, name
        for ax in fig.axes:
            if ax.get_visible() and ax.get_label() != "<colorbar>":
                assert ax.get_xlabel() and ax.get_ylabel(), name
        fig.savefig(tmp_path / f"{name}.png")
        assert (tmp_path / f"{name}.png").stat().st_size > 1000
    score_ax = figures["score"].axes[0]
    assert score_ax.get_xscale() == "log"
    assert {"full fine-tuning", "random guess"} <= set(score_ax.get_legend_handles_labels()[1])
    empty = df.iloc[0:0]
    assert A.score_vs_params_figure(empty) is None
    assert A.gaps_figure(A.gaps(empty)) is None
    assert A.thresholds_figure(A.thresholds(empty)) is None
    assert A.convergence_figure(empty) is None
    assert A.transfer_figure(A.transfer_matrix(matrix.iloc[0:0])) is None
    assert A.spectra_figure({}) is None


def test_an_empty_study_gives_empty_tables_and_untested_findings():
    df = A.from_records([])
    for table in (A.aggregate(df), A.thresholds(df), A.gaps(df), A.convergence(df)):
        assert table.empty
    assert A.gap_trend(A.gaps(df)).empty and A.pattern_speed(A.convergence(df)).empty
    assert {f.verdict for f in A.findings(df)} == {"not tested"}


def test_pattern_speed_needs_both_patterns() -> None:
    df = A.from_records(
        [
            {"model": "m", "task": "t", "method": "apet", "pattern": "adjacent", "seed": 0,
             "trainable_params": 100, "dev_score": 0.8, "curve": [[10, 0.5], [20, 0.8]]},
        ]
    )  # fmt: skip
    assert A.pattern_speed(A.convergence(df)).empty

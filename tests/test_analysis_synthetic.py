"""The analyses on synthetic studies whose truth is known: floors, cells, intervals,
thresholds, and verdicts that follow the evidence (no effect: no ``holds``; a planted
effect: ``holds``)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from petscale import analysis as A
from petscale.analysis.bootstrap import Resampled, interval
from petscale.analysis.verdicts import Rule, judge
from synthetic_study import records

SCALE_FINDINGS = ("methods_converge", "gap_shrinks", "thresholds_fall", "adjacent_faster")


def linear_study(full_spread: float = 0.0, seeds: tuple[int, ...] = (0, 1, 2)) -> pd.DataFrame:
    """One model and task, APET linear in log10(budget) from the floor (0.6, majority share)
    at 10^2 to full fine-tuning (0.9) at 10^5: low threshold 100, high 10^(2 + 3*0.29/0.3)."""
    rows = []
    base = {"model": "m", "task": "t", "metric": "accuracy", "random_guess": 0.5}
    base |= {"dev_examples": 2000, "dev_majority": 0.6, "total_params": 10**6}
    offsets = dict(zip(seeds, np.linspace(-1, 1, len(seeds)), strict=True))
    for seed in seeds:
        full = 0.9 + full_spread * offsets[seed]
        rows.append({**base, "method": "full", "seed": seed, "dev_score": full})
        rows.append({**base, "method": "untuned", "seed": seed, "dev_score": 0.55})
        for x in np.arange(1.0, 6.01, 0.25):
            score = 0.6 + 0.1 * max(0.0, min(x, 5.0) - 2.0)
            rows.append(
                {**base, "method": "apet", "pattern": "adjacent", "seed": seed,
                 "trainable_params": round(10**x), "dev_score": score}
            )  # fmt: skip
    return A.from_records(rows)


def test_cells_never_pool_two_configurations() -> None:
    rows = [
        {"model": "m", "task": "t", "method": "apet", "seed": s, "trainable_params": 100,
         "dev_score": 0.7, "options": {"op": op}, "lr": 0.01}
        for op in ("add", "plug") for s in (0, 1)
    ] + [{"model": "m", "task": "t", "method": "apet", "seed": 0, "trainable_params": 100,
          "dev_score": 0.7, "options": {"op": "add"}, "lr": 0.1}]  # fmt: skip
    df = A.from_records(rows)
    cells = A.aggregate(df)
    assert len(cells) == 3 and sorted(cells["n"]) == [1, 2, 2]
    assert set(cells["structure"]) == {"apet-discrete", "apet-plug-discrete"}
    assert df["series"].nunique() == 3  # the learning rate sets a configuration apart too


def test_the_floor_is_the_larger_of_the_majority_share_and_the_untuned_score() -> None:
    base = {"model": "m", "task": "t", "metric": "accuracy", "random_guess": 0.5}
    df = A.from_records(
        [
            {**base, "method": "untuned", "seed": 0, "dev_score": 0.7, "dev_majority": 0.6},
            {**base, "method": "untuned", "seed": 1, "dev_score": 0.5, "dev_majority": 0.6},
            {**base, "method": "lora", "seed": 2, "dev_score": 0.9, "dev_majority": 0.6},
            {**base, "task": "u", "method": "lora", "seed": 0, "dev_score": 0.9},
        ]
    )
    floors = A.floor_rows(df).set_index(["task", "seed"])
    assert floors.loc[("t", 0), "value"] == 0.7 and floors.loc[("t", 0), "kind"] == "untuned"
    assert floors.loc[("t", 1), "value"] == 0.6 and floors.loc[("t", 1), "kind"] == "majority"
    assert floors.loc[("t", 2), "value"] == 0.6  # no untuned run of that seed
    assert floors.loc[("u", 0), "kind"] == "random guess"  # neither known: stated as such


def test_one_seed_gets_an_interval_from_its_examples_and_none_without_them() -> None:
    one = pd.DataFrame({"cell": ["c"], "value": [0.8], "examples": [400], "metric": ["accuracy"]})
    low, high = interval(Resampled(one, draws=4000).of("c"))
    half = 1.96 * math.sqrt(0.8 * 0.2 / 400)
    assert (high - low) / 2 == pytest.approx(half, rel=0.15)
    f1 = one.assign(metric="macro_f1")
    assert all(math.isnan(v) for v in interval(Resampled(f1).of("c")))
    assert all(math.isnan(v) for v in interval(Resampled(one.drop(columns="examples")).of("c")))


def test_planted_thresholds_are_found_and_their_intervals_cover_them() -> None:
    thr = A.thresholds(linear_study()).iloc[0]
    assert thr["floor"] == pytest.approx(0.6) and thr["floor_kind"] == "majority"
    assert thr["low_status"] == thr["high_status"] == "bracketed"
    assert thr["low"] == pytest.approx(100, rel=0.15)
    planted_high = 10 ** (2 + 0.29 / 0.1)
    assert thr["high"] == pytest.approx(planted_high, rel=0.05)
    for side, planted in (("low", 100), ("high", planted_high)):
        assert thr[f"{side}_ci_low"] <= planted <= thr[f"{side}_ci_high"]
        assert thr[f"{side}_below"] <= thr[side] <= thr[f"{side}_above"]


def test_full_fine_tunings_noise_widens_the_high_thresholds_interval() -> None:
    quiet = A.thresholds(linear_study()).iloc[0]
    noisy = A.thresholds(linear_study(full_spread=0.05)).iloc[0]
    width = {name: math.log10(t["high_ci_high"] / t["high_ci_low"]) for name, t in
             (("quiet", quiet), ("noisy", noisy))}  # fmt: skip
    assert width["noisy"] > 2 * width["quiet"]


def test_unreached_thresholds_and_those_below_the_grid_say_so() -> None:
    df = linear_study()
    df = df[~((df["method"] == "apet") & (df["budget"] < 1000))]  # the grid starts above low
    df = df[~((df["method"] == "apet") & (df["budget"] > 10**4))]  # and ends below high
    thr = A.thresholds(df).iloc[0]
    assert thr["low_status"] == "at or below the grid" and thr["low"] == thr["low_above"]
    assert thr["high_status"] == "not reached" and math.isnan(thr["high"])
    assert thr["high_ci_high"] == math.inf


@pytest.mark.parametrize(
    ("side", "low", "high", "verdict"),
    [
        ("below", -3.0, -1.0, "holds"),
        ("below", -1.0, 2.0, "inconclusive"),
        ("below", -0.4, 0.4, "does not hold"),  # inside the band: no effect of the claimed size
        ("above", 12.0, 20.0, "holds"),
        ("above", 0.0, 0.0, "does not hold"),  # a tie is a tie
        ("above", math.nan, math.nan, "inconclusive"),
    ],
)
def test_the_verdict_rule(side: str, low: float, high: float, verdict: str) -> None:
    edge = -0.5 if side == "below" else 10.0
    assert judge(Rule(side, edge), low, high, n=3) == verdict
    assert judge(Rule(side, edge), low, high, n=0) == "not tested"
    assert judge(Rule(side, edge, min_cases=4), low, high, n=3) == "inconclusive"


def test_no_effect_gives_no_holds_and_mostly_inconclusive() -> None:
    """Three model sizes, three seeds, seed sd 0.03, nothing depending on size or pattern."""
    verdicts = []
    for seed in range(4):
        found = {f.key: f for f in A.findings(A.from_records(records(seed=seed)), draws=400)}
        for key in SCALE_FINDINGS:
            assert found[key].verdict != "holds", (seed, found[key])
            verdicts.append(found[key].verdict)
        falls = found["thresholds_fall"]
        assert falls.verdict == "inconclusive" or falls.ci_low < 0 < falls.ci_high
    counts = pd.Series(verdicts).value_counts()
    assert counts.get("inconclusive", 0) + counts.get("does not hold", 0) == len(verdicts)
    assert counts.get("inconclusive", 0) >= len(verdicts) / 2 - counts.get("does not hold", 0)


def test_one_seed_or_two_close_sizes_bear_no_scale_verdict() -> None:
    one_seed = {f.key: f for f in A.findings(A.from_records(records(seeds=(0,))), draws=300)}
    for key in SCALE_FINDINGS:
        assert one_seed[key].verdict in ("inconclusive", "not tested"), one_seed[key]
    close = A.from_records(records(sizes=(1.74e7, 2.27e7), threshold_fall=1, gap_shrink=0.5))
    found = {f.key: f for f in A.findings(close, draws=300)}
    for key in ("methods_converge", "gap_shrinks", "thresholds_fall"):  # 0.12 decades apart
        assert found[key].verdict == "not tested" and "3.2x" in found[key].evidence


def test_strong_planted_effects_hold() -> None:
    planted = records(
        sizes=(1e7, 1e8, 1e9),
        seeds=(0, 1, 2, 3, 4),
        middle=3.5,  # the thresholds stay inside the grid as they fall
        threshold_fall=0.5,
        gap_shrink=0.45,
        adjacent_lead=40,
        sd=0.005,
        examples=2000,
    )
    found = {f.key: f for f in A.findings(A.from_records(planted), draws=400)}
    for key in SCALE_FINDINGS:
        assert found[key].verdict == "holds", found[key]
        assert found[key].n >= 1 and found[key].ci_low <= found[key].ci_high
    assert found["thresholds_fall"].effect == pytest.approx(-0.5, abs=0.2)
    assert found["adjacent_faster"].effect == pytest.approx(40)


def test_structures_alike_or_decades_apart() -> None:
    quiet = {"seeds": (0, 1, 2, 3, 4), "sd": 0.005, "examples": 2000}
    alike = {f.key: f for f in A.findings(A.from_records(records(**quiet)), draws=400)}
    assert alike["thresholds_alike"].verdict == "holds"
    apart = A.from_records(records(**quiet, shape_shift=1.0))
    assert {f.key: f for f in A.findings(apart, draws=400)}["thresholds_alike"].verdict == (
        "does not hold"
    )


def test_convergence_and_pattern_speed() -> None:
    df = A.from_records(records(sizes=(1e7,), tasks=("t",), seeds=(0,), adjacent_lead=40))
    conv = A.convergence(df)
    assert (conv.loc[conv["structure"].str.endswith("adjacent"), "steps_to_fraction"] <= 20).all()
    speed = A.pattern_speed(conv)
    assert (speed["faster"] == "adjacent").all()


def test_transfer_matrix_relative_scores_and_type_split() -> None:
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
    assert matrix.loc[("a", "a"), "relative"] == pytest.approx(1.0)
    split = A.same_type_vs_cross(matrix.reset_index(), {"a": "x", "b": "x", "c": "y"})
    split = split.set_index("kind")
    assert split.loc["same type", "mean_relative"] == pytest.approx(0.75)
    assert split.loc["cross type", "mean_relative"] == pytest.approx(0.125)


def test_the_untuned_models_score_is_the_floor_of_relative_transfer() -> None:
    rows = [("a", "a", 0.9), ("b", "a", 0.7), ("untuned", "a", 0.7), ("untuned", "a", 0.6)]
    scores = pd.DataFrame(
        [{"model": "m", "source": s, "target": t, "score": v, "random_guess": 0.5}
         for s, t, v in rows]
    )  # fmt: skip
    matrix = A.transfer_matrix(scores).set_index(["source", "target"])
    assert matrix.loc[("b", "a"), "relative"] == pytest.approx((0.7 - 0.65) / (0.9 - 0.65))


def test_an_empty_study_gives_empty_tables_and_untested_findings() -> None:
    df = A.from_records([])
    for table in (A.aggregate(df), A.thresholds(df), A.gaps(df), A.convergence(df)):
        assert table.empty
    assert {f.verdict for f in A.findings(df)} == {"not tested"}


def test_a_pet_method_off_the_grid_joins_the_matched_comparison_at_its_nearest_budget() -> None:
    rows = records(sizes=(1e7,), tasks=("t",), seeds=(0,))
    lora = {"model": "m1e+07", "task": "t", "method": "lora", "seed": 0, "metric": "accuracy"}
    rows.append({**lora, "trainable_params": 73728, "dev_score": 0.8, "total_params": 1e7})
    matched = A.matched_comparison(A.aggregate(A.from_records(rows)))
    row = matched[matched["structure"] == "lora"].iloc[0]
    assert row["budget"] == 100000 and row["mismatch"] == pytest.approx(0.73728)
    assert row["gap"] == pytest.approx(row["full_score"] - 0.8)
    apet = matched[matched["structure"] != "lora"]
    assert (apet["mismatch"] == 1).all() and len(matched) == len(apet) + 1


def test_the_words_are_no_stronger_than_the_verdict() -> None:
    found = {f.key: f for f in A.findings(A.from_records(records(seed=1)), draws=200)}
    for f in found.values():
        first = f.conclusion.split(":")[0]
        expected = {
            "holds": "Supported on this study",
            "does not hold": "Not supported",
            "inconclusive": "The data cannot tell whether " + f.claim[0].lower() + f.claim[1:],
            "not tested": "Not tested",
        }[f.verdict]
        assert first == expected

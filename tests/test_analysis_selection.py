"""Picking a swept setting per cell on dev, then reading the study on test: a planted best
learning rate per budget is found, dev's luck is not reported, and bad asks are refused."""

from __future__ import annotations

import numpy as np
import pytest

from petscale.analysis import from_records, select_on_dev, thresholds
from petscale.errors import UserError

BUDGETS = (100, 1000, 10000)
RATES = (1e-4, 1e-3, 1e-2)


def study(best: dict[int, float], seeds=(0, 1, 2), sd=0.01, seed=0):
    """APET at three budgets, three rates each: the ``best[budget]`` rate scores 0.8 on dev and
    test, the others 0.6; plus full fine-tuning at each rate and one untuned trial per seed."""
    rng = np.random.default_rng(seed)
    rows = []
    base = {"model": "m", "task": "t", "head": "frozen", "metric": "accuracy"}
    base |= {"dev_examples": 500, "test_examples": 500, "dev_majority": 0.5, "test_majority": 0.5}
    for s in seeds:
        rows.append({**base, "method": "untuned", "seed": s, "dev_score": 0.5, "test_score": 0.5})
        for lr in RATES:
            full = {"method": "full", "lr": lr, "seed": s, "trainable_params": 10**6}
            rows.append({**base, **full, "dev_score": 0.9, "test_score": 0.88})
            for budget in BUDGETS:
                score = 0.8 if best[budget] == lr else 0.6
                rows.append(
                    {
                        **base,
                        "method": "apet",
                        "options": {"budget": budget, "pattern": "discrete"},
                        "trainable_params": budget,
                        "lr": lr,
                        "seed": s,
                        "dev_score": score + rng.normal(0, sd),
                        "test_score": score - 0.02 + rng.normal(0, sd),
                    }
                )
    return from_records(rows)


def test_the_planted_best_rate_per_budget_is_picked_and_read_on_test():
    best = {100: 1e-2, 1000: 1e-3, 10000: 1e-4}
    df = study(best)
    picked = select_on_dev(df, "lr")
    apet = picked[picked["method"] == "apet"]
    assert dict(zip(apet["budget"], apet["selected_lr"], strict=True)) == best
    assert len(apet) == len(BUDGETS) * 3  # every seed of the chosen rate, no other
    # scores are the test scores of the chosen trials
    chosen = df[(df["method"] == "apet") & (df["lr"] == df["budget"].map(best))]
    assert sorted(apet["dev_score"]) == sorted(chosen["test_score"])
    # one series across budgets: the curve the thresholds read
    assert apet["series"].nunique() == 1 and apet["lr"].isna().all()
    assert not thresholds(picked).empty


def test_without_an_effect_each_cell_still_picks_one_rate_and_keeps_its_seeds():
    flat = {b: None for b in BUDGETS}  # no rate is best: every trial scores 0.6 plus noise
    picked = select_on_dev(study(flat, sd=0.02), "lr")
    counts = (
        picked[picked["method"] == "apet"].groupby("budget")["selected_lr"].agg(["nunique", "size"])
    )
    assert (counts["nunique"] == 1).all() and (counts["size"] == 3).all()


@pytest.mark.parametrize(
    "setting, change, message",
    [
        ("head", {}, "pick one of steps, batch_size, lr"),
        ("steps", {}, "one value of steps; sweep it"),
        ("lr", {"test_score": None}, "has none .no test split"),
    ],
)
def test_a_selection_the_data_cannot_make_is_refused(setting, change, message):
    df = study({b: 1e-3 for b in BUDGETS})
    for key, value in change.items():
        df[key] = value
    with pytest.raises(UserError, match=message):
        select_on_dev(df, setting)


def test_report_select_reads_a_swept_csv_on_test(tmp_path):
    import csv
    import json

    from typer.testing import CliRunner

    from petscale.cli import app

    best = {100: 1e-2, 1000: 1e-3, 10000: 1e-4}
    rows = study(best).to_dict("records")
    columns = ("model", "task", "method", "seed", "lr", "dev_score", "test_score")
    path = tmp_path / "swept.csv"
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow([*columns, "trainable_params", "options.pattern"])
        for row in rows:
            pattern = row["pattern"] if row["method"] == "apet" else ""
            values = [row[c] if row[c] == row[c] else "" for c in columns]  # NaN: empty
            writer.writerow([*values, row["trainable_params"] or "", pattern or ""])
    result = CliRunner().invoke(app, ["report", str(path), "--select", "lr", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert (
        "test, at the lr picked per cell on dev"
        in (tmp_path / "swept-report" / "report.html").read_text()
    )
    apet = [t for t in data["trials"] if t["structure"].startswith("apet")]
    assert {(t["budget"], t["selected_lr"]) for t in apet} == set(best.items())

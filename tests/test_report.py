"""`petscale report`: the folder it writes, its JSON, its errors, on a planted study store."""

from __future__ import annotations

import dataclasses
import json
import math
import random
import subprocess
import sys
from html import escape
from pathlib import Path

import numpy as np
import pytest
from matplotlib.collections import LineCollection
from rich.console import Console

from petscale.analysis import (
    VERDICTS,
    reference_lines,
    score_vs_params_figure,
    thresholds_figure,
)
from petscale.errors import UserError
from petscale.report import Report, gather, write
from petscale.report.build import spec_of
from petscale.report.tables import effect_text, significant, threshold
from petscale.report.terminal import print_summary
from petscale.study.store import Owner, Store

# Two model sizes; the larger one needs fewer trainable parameters (the study's claim).
MODELS = {"tiny-s": (1_000_000, 3.6), "tiny-l": (10_000_000, 3.0)}  # total params, log10 mid
BUDGETS = (100, 1_000, 10_000, 100_000, 1_000_000)
DEFAULTS = {"lora": 20_000, "bitfit": 5_000}
FULL, RANDOM = 0.85, 0.5
# The floor: the untuned model scores about the majority share; a few trained entries score
# below it (a perturbed model), so the low threshold lies inside the grid.
UNTUNED, MAJORITY, BOTTOM = 0.5, 0.5, 0.45
EXAMPLES = 1000  # dev examples per trial


def _score(budget: int, mid: float, noise: float) -> float:
    """A sigmoid in log budget from below the floor up to full fine-tuning."""
    rise = 1 / (1 + math.exp(-3.0 * (math.log10(budget) - mid)))
    return BOTTOM + (FULL - BOTTOM) * rise + noise


def _trial(model: str, method: str, seed: int, params: int, score: float, **options) -> tuple:
    config = {
        "model": model,
        "task": "rotten_tomatoes",
        "method": method,
        "options": options,
        "head": "frozen",
        "seed": seed,
        "steps": 100,
    }
    # Discrete placements converge more slowly than adjacent ones (the study's finding 4).
    rise = 100 if options.get("pattern") == "discrete" else 40
    curve = [[s, RANDOM + (score - RANDOM) * min(1.0, s / rise)] for s in range(20, 101, 20)]
    if method == "untuned":
        curve = []  # no step taken: no dev curve
    result = {
        "options": options,
        "steps": 100,
        "trainable_params": params,
        "head_params": 0,
        "total_params": MODELS[model][0],
        "dev_score": score,
        "test_score": score - 0.01,
        "random_guess": RANDOM,
        "dev_examples": EXAMPLES,
        "dev_majority": MAJORITY,
        "metric": "accuracy",
        "seconds": 10.0,
        "curve": curve,
    }
    return config, result


def planted_study(folder: Path, seeds: int = 3) -> Path:
    """A done study: APET (both patterns) on a budget grid, lora, bitfit, full and the untuned
    model (the floor), on two models."""
    rng = random.Random(0)
    trials = []
    for model, (total, mid) in MODELS.items():
        for seed in range(seeds):
            trials.append(_trial(model, "untuned", seed, 0, UNTUNED + rng.gauss(0, 0.005)))
            trials.append(_trial(model, "full", seed, total, FULL + rng.gauss(0, 0.005)))
            for pattern in ("adjacent", "discrete"):
                for budget in BUDGETS:
                    score = _score(budget, mid, rng.gauss(0, 0.005))
                    trials.append(
                        _trial(model, "apet", seed, budget, score, budget=budget, pattern=pattern)
                    )
            for method, budget in DEFAULTS.items():
                score = _score(budget, mid, rng.gauss(0, 0.005))
                trials.append(_trial(model, method, seed, budget, score))
    with Store(folder) as store:
        store.queue([config for config, _ in trials])
        owner = Owner()
        while (claimed := store.claim(owner)) is not None:
            tid, config = claimed
            store.finish(tid, next(r for c, r in trials if c == config))
    return folder


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return planted_study(tmp_path_factory.mktemp("study"))


@pytest.fixture(scope="module")
def report(study: Path) -> Report:
    return gather(study)  # the figures take a few seconds: gathered once for these tests


def test_the_report_folder_holds_the_page_figures_and_tables(report, tmp_path):
    page = write(report, tmp_path / "report")
    html = page.read_text()
    assert page.name == "report.html"
    figures = sorted(p.name for p in (tmp_path / "report" / "figures").iterdir())
    assert figures and all((tmp_path / "report" / "figures" / f).stat().st_size for f in figures)
    names = {Path(f).stem for f in figures}
    assert figures == sorted(f"{n}.{ext}" for n in names for ext in ("png", "svg"))
    # Self-contained: every figure is embedded, nothing is fetched.
    assert html.count('src="data:image/svg+xml;base64,') == len(names)
    assert "http://" not in html and "https://" not in html and "<script" not in html
    for finding in report.findings:
        assert finding.verdict in html
        if finding.n:  # the verdict comes with its effect and 95% interval
            assert escape(effect_text(finding)) in html
    assert "frozen" in html  # the head mode
    assert "torch" in html and "transformers" in html
    thresholds = (tmp_path / "report" / "thresholds.csv").read_text().splitlines()
    assert {"model", "task", "structure", "low", "high"} <= set(thresholds[0].split(","))
    assert len(thresholds) == 1 + len(report.thresholds)
    gaps = (tmp_path / "report" / "gaps.csv").read_text().splitlines()
    assert "gap" in gaps[0].split(",") and len(gaps) > 1
    matched = (tmp_path / "report" / "matched.csv").read_text().splitlines()
    assert {"budget", "own_budget", "mismatch", "gap"} <= set(matched[0].split(","))
    assert len(matched) == 1 + len(report.matched) and "Matched comparison" in html


def test_the_report_gives_time_spent_and_the_configs_without_a_spec(report):
    trials = 2 * 3 * (2 + 2 * len(BUDGETS) + len(DEFAULTS))  # 2: full and untuned
    assert report.context["trial_counts"]["done"] == trials
    assert report.context["seconds_spent"] == pytest.approx(10.0 * trials)
    assert report.context["heads"] == ["frozen"]
    grid = report.context["spec"]["grid"]
    assert grid["options.pattern"] == ['"adjacent"', '"discrete"']


def test_a_kept_spec_is_shown_as_written(report, tmp_path):
    (tmp_path / "spec.yaml").write_text("models: [tiny-s, tiny-l]  # <planted>\n")
    kept = dataclasses.replace(report, context={**report.context, "spec": spec_of(tmp_path, [])})
    page = write(kept, tmp_path / "r").read_text()
    assert "models: [tiny-s, tiny-l]  # &lt;planted&gt;" in page


def test_a_linked_or_binary_spec_is_never_shown(tmp_path):
    # Reports are shared: a spec.yaml linked to a file of the reader's must not end up in one.
    secret = tmp_path / "credentials"
    secret.write_text("token = s3cret\n")
    study = tmp_path / "study"
    study.mkdir()
    (study / "spec.yaml").symlink_to(secret)
    assert "text" not in spec_of(study, [])
    (study / "spec.yaml").unlink()
    (study / "spec.yaml").write_bytes(b"\xff\xfe\x00binary")
    assert "text" not in spec_of(study, [])


def test_a_rewrite_replaces_the_report_and_a_foreign_folder_is_refused(report, tmp_path):
    out = tmp_path / "report"
    write(report, out)
    (out / "figures" / "stale.png").write_bytes(b"old")
    write(report, out)
    assert not (out / "figures" / "stale.png").exists()
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(UserError, match="not a petscale report"):
        write(report, foreign)
    assert (foreign / "notes.txt").read_text() == "keep me"


def test_the_planted_thresholds_fall_as_the_model_grows(report):
    thr = report.thresholds
    adjacent = thr[thr["structure"] == "apet-adjacent"].set_index("model")
    assert (adjacent["floor"] >= MAJORITY).all()  # the larger of majority share and untuned
    for side in ("low", "high"):
        assert (adjacent[f"{side}_status"] == "bracketed").all()
        assert adjacent.loc["tiny-l", side] < adjacent.loc["tiny-s", side]
        assert (adjacent[f"{side}_ci_low"] <= adjacent[side]).all()
        assert (adjacent[side] <= adjacent[f"{side}_ci_high"]).all()
    # The low thresholds sit on the steep part of the curve: their intervals are finite and
    # inside the grid; near the plateau the eval examples' noise (1,000 each) is about the one
    # point of tolerance, so the high threshold's interval may reach past the grid.
    assert np.isfinite(adjacent[["low_ci_low", "low_ci_high"]].to_numpy()).all()


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", "from petscale.cli import main; main()", *args],
        capture_output=True,
        text=True,
        check=False,
    )


def test_cli_json_prints_findings_thresholds_and_gaps(study, tmp_path):
    done = _cli("report", str(study), "--out", str(tmp_path / "r"), "--json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert Path(data["report"]).is_file()
    assert {"findings", "thresholds", "gaps", "gap_trend"} <= set(data)
    assert {f["verdict"] for f in data["findings"]} <= set(VERDICTS)
    assert all({"effect", "ci_low", "ci_high", "n", "rule"} <= set(f) for f in data["findings"])
    assert all("n_seeds" in f for f in data["findings"])


def test_the_terminal_summary_names_the_report_and_every_verdict(report, tmp_path):
    console = Console(record=True, width=80)
    print_summary(report, tmp_path / "report.html", console)
    text = console.export_text()
    assert f"report: {tmp_path / 'report.html'}" in text.replace("\n", "")
    assert "Findings" in text and "Thresholds" in text
    for finding in report.findings:
        assert finding.verdict in text
    assert "…" not in text  # a narrow terminal folds a long cell onto more lines, never cuts it
    wide = Console(record=True, width=400)
    print_summary(report, tmp_path / "report.html", wide)
    text = wide.export_text()
    tested = [f for f in report.findings if f.n]
    assert tested
    for finding in tested:
        assert f"{finding.verdict} — {effect_text(finding)}" in text
        if math.isfinite(finding.ci_low):
            assert f"(95% CI {significant(finding.ci_low, signed=True)} to " in text
        else:  # too few cases for an interval (the bootstrap's draws decide): said so
            assert f"(95% CI n/a, n={finding.n})" in text
    adjacent = report.thresholds[report.thresholds["structure"] == "apet-adjacent"].iloc[0]
    assert threshold(adjacent.to_dict(), "low") in text


def test_numbers_at_two_significant_figures():
    assert significant(2345) == "2,300"
    assert significant(123_456) == "120,000"
    assert significant(0.0123) == "0.012"
    assert significant(9.96) == "10"
    assert significant(-1.0, signed=True) == "-1.0"
    assert significant(1.44, signed=True) == "+1.4"
    assert significant(0.5) == "0.50"
    assert significant(math.inf) == "∞"
    assert significant(math.nan) == "–"


def test_a_threshold_shows_its_estimate_interval_and_bracketing_budgets():
    row = {"low": 2345.0, "low_ci_low": 912.0, "low_ci_high": math.inf, "low_below": 1000.0}
    bracketed = {**row, "low_status": "bracketed", "low_above": 10_000.0}
    assert threshold(bracketed, "low") == "2,300 (95% CI 910 to ∞; between 1,000 and 10,000)"
    below = {**row, "low": 100.0, "low_ci_low": 100.0, "low_ci_high": 150.0}
    below |= {"low_status": "at or below the grid", "low_below": math.nan, "low_above": 100.0}
    assert threshold(below, "low") == "≤ 100 (at or below the grid; 95% CI 100 to 150)"
    above = {**row, "low": math.nan, "low_status": "not reached", "low_below": 1e6}
    above |= {"low_ci_low": math.inf, "low_above": math.nan}
    assert threshold(above, "low") == "> 1,000,000 (not reached; 95% CI ∞ to ∞)"
    nothing = {**row, "low_status": "no line", "low_ci_low": math.nan, "low_ci_high": math.nan}
    assert threshold(nothing, "low").startswith("no line")


def test_the_thresholds_figure_draws_each_interval_and_clips_infinite_ends(report):
    (ax,) = thresholds_figure(report.thresholds).axes
    bars = [c for c in ax.collections if isinstance(c, LineCollection)]
    segments = [segment for bar in bars for segment in bar.get_segments()]
    assert len(segments) == 2 * len(report.thresholds)  # low and high of every series
    bottom, top = ax.get_ylim()
    tops = [segment[:, 1].max() for segment in segments]
    assert all(bottom <= t <= top for t in tops)
    # the high thresholds' intervals that run past the grid (to infinity) end at the axis' top
    past = int(np.isinf(report.thresholds["high_ci_high"]).sum())
    assert past and sum(t == pytest.approx(top) for t in tops) == past


def test_the_score_figure_draws_the_floor_not_random_guessing(report):
    figure = score_vs_params_figure(report.results)
    refs = reference_lines(report.results).set_index(["model", "task"])
    labels = [text.get_text() for text in figure.legends[0].get_texts()]
    assert "floor (majority class or untuned)" in labels
    assert not any("random" in label for label in labels)
    # Figure 3's layout: a row per task, a panel per model size, smallest first, y shared
    tasks = sorted(report.results["task"].unique())
    sizes = report.results.groupby("model")["total_params"].max().sort_values()
    assert len(figure.axes) == len(tasks) * len(sizes)
    for i, ax in enumerate(figure.axes):
        task, model = tasks[i // len(sizes)], sizes.index[i % len(sizes)]
        assert ax.get_title().startswith(f"{task} · {model} (")
        (floor,) = [line for line in ax.get_lines() if line.get_label().startswith("floor")]
        assert floor.get_ydata()[0] == pytest.approx(refs.loc[(model, task), "floor"])
        assert ax.get_shared_y_axes().joined(ax, figure.axes[i - i % len(sizes)])


def test_a_folder_without_a_store_is_a_one_line_error(tmp_path):
    done = _cli("report", str(tmp_path))
    assert done.returncode == 2
    assert done.stderr.startswith("error: ") and done.stderr.count("\n") == 1
    assert not (tmp_path / "report").exists()


def test_a_study_without_thresholds_says_so_instead_of_an_empty_table(report, tmp_path):
    empty = dataclasses.replace(report, thresholds=report.thresholds.iloc[0:0])
    console = Console(record=True, width=80)
    print_summary(empty, tmp_path / "report.html", console)
    text = console.export_text()
    assert "Thresholds: none (no method ran at several budgets" in text
    assert "┏" not in text.split("Findings")[1].split("Thresholds")[1]  # no table drawn


def test_names_reach_the_terminal_as_written_never_as_markup_or_escapes(report, tmp_path):
    # A study's names come from its spec and store: "[/]" would crash rich's markup parser and
    # an escape sequence would be obeyed by the terminal.
    crafted = report.thresholds.copy()
    crafted.loc[crafted.index[0], "model"] = "[/]m[bold]\x1b[2J"
    console = Console(record=True, width=200)
    print_summary(dataclasses.replace(report, thresholds=crafted), tmp_path / "r.html", console)
    text = console.export_text()
    assert "[/]m[bold]\\x1b[2J" in text
    assert "\x1b" not in text

"""``report.html``: one self-contained page (inline CSS, figures as data URIs, no script)."""

from __future__ import annotations

from html import escape
from typing import Any

import pandas as pd

from petscale import analysis
from petscale.formatting import duration
from petscale.report.contents import TRIAL_COLUMNS, Figure, Report
from petscale.report.tables import GAP_COLUMNS, THRESHOLD_COLUMNS, effect_text, rows

VERDICT_CLASS = {
    "holds": "holds",
    "does not hold": "fails",
    "inconclusive": "inconclusive",
    "not tested": "untested",
}

# Colours from the Okabe-Ito palette, as in the figures; the verdict is also written out.
_CSS = """
body { font: 15px/1.45 system-ui, sans-serif; color: #222; max-width: 1100px; margin: 2em auto;
       padding: 0 1em; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; }
h2 { margin-top: 1.8em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: 0.6em 0 1em; font-size: 0.92em; }
th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: #f3f3f3; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.verdict { font-weight: 600; padding: 1px 6px; border-radius: 3px; white-space: nowrap; }
.holds { background: #009E73; color: #fff; } .fails { background: #D55E00; color: #fff; }
.inconclusive { background: #E69F00; color: #000; } .untested { background: #ddd; color: #000; }
figure { margin: 1em 0 2em; } figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { color: #555; font-size: 0.9em; }
pre { background: #f6f6f6; padding: 0.8em; overflow-x: auto; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 2px 1em; }
dl.facts dt { font-weight: 600; } dl.facts dd { margin: 0; }
.note { color: #555; font-size: 0.9em; } .wide { overflow-x: auto; }
"""


def render(report: Report) -> str:
    """The whole page as HTML text."""
    ctx = report.context
    name = escape(report.folder.name or str(report.folder))
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>petscale report: {name}</title><style>{_CSS}</style></head><body>",
        f"<h1>petscale report: {name}</h1>",
        f'<p class="note">{_INPUT[ctx["input"]]} {escape(str(report.folder))}; '
        f"built {escape(ctx['generated'])}.</p>",
        _facts(ctx),
        "<h2>Findings</h2>",
        _findings(report),
        "<h2>Figures</h2>",
        *(_figure(fig) for fig in report.figures),
        "<h2>Thresholds</h2>",
        _THRESHOLD_NOTE,
        _table(report.thresholds, THRESHOLD_COLUMNS),
        "<h3>Across structures</h3>",
        _table(report.agreement),
        "<h2>Gaps to full fine-tuning</h2>",
        "<p class=\"note\">gap = full fine-tuning's score minus the method's, in the metric's "
        "units (0.01 = one point; the figure shows points), at the method's default budget and "
        "at budgets that several structures ran at on the same model (matched).</p>",
        _table(report.gaps, GAP_COLUMNS),
        "<h3>Matched comparison</h3>",
        '<p class="note">Every tuned configuration at the grid budget nearest its own (log '
        "scale): mismatch = its own budget / that budget (1: an exact match), gap to full "
        "fine-tuning of the same set-up.</p>",
        _table(report.matched),
        "<h3>Direction over model scale</h3>",
        _table(report.gap_trend),
        "<h2>Convergence: ADJACENT vs DISCRETE</h2>",
        _table(report.pattern_speed),
        *_optional(report),
        "<h2>Trials</h2>",
        '<p class="note">Every done trial (also trials.csv); budget: its trainable parameters; '
        "seconds: its training and evaluation time.</p>",
        _table(report.trial_table(), TRIAL_COLUMNS[1:]),
        "<h2>Environment</h2>",
        _mapping("Versions", ctx["versions"]),
        _mapping("This machine (where the report was built)", ctx["machine"]),
        f"<p>Trials ran on: {escape(', '.join(ctx['hosts']) or 'unknown')}.</p>",
        "<h2>Study spec</h2>",
        _spec(ctx["spec"]),
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"


_INPUT = {"study": "Study folder", "table": "Exported table"}

_THRESHOLD_NOTE = (
    '<p class="note">Per series (one structure on one model and task, every other setting '
    "fixed), on its mean curve over seeds: low, the trainable-parameter budget where the curve "
    "first rises above the floor (the larger of the eval set's majority-class share and the "
    "untuned model's score); high, where it first comes within one point of full fine-tuning; "
    "both interpolated on log budget between the two budgets that bracket them "
    "(docs/ANALYSIS.md). Each with its 95% bootstrap interval over seeds and eval examples (∞: "
    "some replicates never reach it on the grid), at two significant figures. ≤: the grid's "
    "smallest budget already passes, so the threshold is at most that; &gt;: no budget of the "
    "grid passes.</p>"
)


def _optional(report: Report) -> list[str]:
    """Transfer and subspace sections, when the report was asked for them."""
    parts = []
    if report.context["transfer"]:
        parts += [
            "<h2>Zero-shot task transfer</h2>",
            '<p class="note">relative = (score - untuned) / (in-task score - untuned) on the '
            "target task, where untuned is the untuned model's score there: 1 transfers fully, "
            "0 is no better than no tuning.</p>",
            _table(report.transfer),
            _table(report.transfer_kinds),
        ]
    if report.context["subspace"]:
        parts += [
            "<h2>Subspaces of the deltas</h2>",
            '<p class="note">Mean cosine of the principal angles between the top singular '
            "subspaces of two trials' dense deltas of one weight, against random subspaces of "
            "the same dimension (full table: subspace.csv).</p>",
            _table(report.subspace_summary()),
        ]
    return parts


def _facts(ctx: dict[str, Any]) -> str:
    trials = ctx["trial_counts"]
    facts = {
        "Trials": f"{trials['done']} done, {trials['failed']} failed, {trials['pending']} pending "
        f"(of {trials['total']})",
        "Time spent": f"{duration(ctx['seconds_spent'])} of trial time (sum over done trials)",
        "Head mode": ", ".join(ctx["heads"]),
        "Models": ", ".join(ctx["models"]),
        "Tasks": ", ".join(ctx["tasks"]),
        "Seeds": ", ".join(str(s) for s in ctx["seeds"]),
        "Scores": (
            f"test, at the {ctx['selected']} picked per cell on dev"
            if ctx.get("selected")
            else "dev"
        ),
    }
    items = "".join(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in facts.items())
    return f'<dl class="facts">{items}</dl>'


def _findings(report: Report) -> str:
    tally: dict[str, int] = {}
    for finding in report.findings:
        tally[finding.verdict] = tally.get(finding.verdict, 0) + 1
    plain = "; ".join(f"{verdict}: {n}" for verdict, n in tally.items())
    head = "<tr><th>claim</th><th>on this run</th><th>seeds</th><th>evidence</th></tr>"
    body = "".join(
        f"<tr><td>{escape(f.claim)}</td>"
        f'<td><span class="verdict {VERDICT_CLASS.get(f.verdict, "untested")}">'
        f"{escape(f.verdict)}</span>{_effect(f)}</td>"
        f'<td class="num">{f.n_seeds}</td><td>{escape(f.evidence)}'
        f'<br><span class="note">{escape(f.rule)}</span></td></tr>'
        for f in report.findings
    )
    words = "".join(f"<li>{escape(f.conclusion)}</li>" for f in report.findings)
    return (
        f"<p>The study's findings on this run ({escape(plain)}):</p><table>{head}{body}</table>"
        f"<h3>What to conclude</h3><ul>{words}</ul>"
    )


def _effect(finding: analysis.Finding) -> str:
    effect = effect_text(finding)
    return f" — {escape(effect)}" if effect else ""


def _figure(fig: Figure) -> str:
    return (
        f'<figure id="fig-{fig.name}"><img src="{fig.data_uri()}" alt="{escape(fig.title)}">'
        f"<figcaption>{escape(fig.title)} (also figures/{fig.name}.png and .svg)"
        "</figcaption></figure>"
    )


def _table(df: pd.DataFrame, columns: tuple[str, ...] | None = None) -> str:
    if df.empty:
        return '<p class="note">No data for this table in this study.</p>'
    header, body = rows(df, columns)
    types = pd.api.types
    numeric = [types.is_numeric_dtype(df[c]) and not types.is_bool_dtype(df[c]) for c in header]
    head = "".join(f"<th>{escape(c)}</th>" for c in header)
    lines = "".join(
        "<tr>"
        + "".join(
            f'<td class="num">{escape(v)}</td>' if num else f"<td>{escape(v)}</td>"
            for v, num in zip(line, numeric, strict=True)
        )
        + "</tr>"
        for line in body
    )
    # A wide table scrolls in its own box: names are never cut, the page keeps its width.
    return f'<div class="wide"><table><tr>{head}</tr>{lines}</table></div>'


def _mapping(title: str, values: dict[str, str]) -> str:
    body = "".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in values.items())
    return f"<h3>{escape(title)}</h3><table>{body}</table>"


def _spec(spec: dict[str, Any]) -> str:
    source = f'<p class="note">From {escape(spec["source"])}.</p>'
    if "text" in spec:
        return source + f"<pre>{escape(spec['text'])}</pre>"
    body = "".join(
        f"<tr><th>{escape(k)}</th><td>{escape(', '.join(v))}</td></tr>"
        for k, v in spec["grid"].items()
    )
    return source + f"<table>{body}</table>"

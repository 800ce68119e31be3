"""The terminal summary of a report: the findings and the thresholds, as rich tables."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table

from petscale.formatting import duration, literal
from petscale.report.contents import Report
from petscale.report.tables import effect_text, rows

# The terminal shows the thresholds themselves; report.html adds the reference scores.
TERMINAL_THRESHOLD_COLUMNS = ("model", "task", "structure", "low", "high", "n_seeds")
VERDICT_STYLE = {"holds": "green", "does not hold": "red", "inconclusive": "yellow"}


def print_summary(report: Report, path: Path, console: Console | None = None) -> None:
    """Where the report is, what it covers, the findings' verdicts and the thresholds."""
    console = console or Console()
    ctx = report.context
    console.print(
        f"[bold]petscale report[/]: {ctx['trial_counts']['done']} trials, "
        f"{duration(ctx['seconds_spent'])} of trial time, head mode {', '.join(ctx['heads'])}"
    )
    findings = Table("finding", "on this run", "seeds", "evidence", title="Findings")
    for f in report.findings:
        style = VERDICT_STYLE.get(f.verdict, "dim")
        effect = effect_text(f)
        verdict = f"[{style}]{f.verdict}[/]" + (f" — {literal(effect)}" if effect else "")
        findings.add_row(f.claim, verdict, str(f.n_seeds), literal(f.evidence))
    console.print(findings)
    header, body = rows(report.thresholds, TERMINAL_THRESHOLD_COLUMNS)
    if body:
        thresholds = Table(title="Thresholds (trainable parameters)")
        for name in header:
            # Names wrap onto a second line rather than lose characters.
            justify = "left" if name in ("model", "task", "structure") else "right"
            thresholds.add_column(name, overflow="fold", justify=justify)
        for line in body:
            thresholds.add_row(*map(literal, line))
        console.print(thresholds)
    else:
        console.print("Thresholds: none (no method ran at several budgets on one model and task)")
    console.print(f"report: {literal(str(path))}")

"""`petscale report --transfer --subspace` on a tiny study that kept its deltas."""

from __future__ import annotations

import shutil

from typer.testing import CliRunner

from petscale.cli.study import app
from petscale.report import gather, write


def test_transfer_and_subspace_sections_from_kept_deltas(tiny_bert, toy_task, tmp_path):
    twin = tmp_path / "toy-twin"  # a second task with the same label set
    shutil.copytree(toy_task, twin)
    spec = tmp_path / "s.yaml"
    spec.write_text(
        f"models: [{tiny_bert}]\ntasks: [{toy_task}, {twin}]\nmethods: [{{lora: {{rank: 2}}}}]\n"
        "steps: 2\nbatch_size: 8\nmax_length: 16\nseeds: [0]\n"
    )
    folder = tmp_path / "study"
    done = CliRunner().invoke(app, ["run", str(spec), "--out", str(folder)])
    assert done.exit_code == 0, done.output

    report = gather(folder, transfer=True, transfer_limit=8, subspace=True)
    # Two tasks, each delta scored on both: a 2 x 2 matrix with its diagonal as in-task scores.
    assert len(report.transfer) == 4
    diagonal = report.transfer[report.transfer["source"] == report.transfer["target"]]
    assert (diagonal["score"] == diagonal["in_task"]).all()
    assert set(report.subspace["differs"]) == {"task"}
    page = write(report, tmp_path / "report").read_text()
    assert "Zero-shot task transfer" in page and "Subspaces of the deltas" in page
    out = tmp_path / "report"
    assert (out / "transfer.csv").is_file() and (out / "subspace.csv").is_file()
    names = {p.stem for p in (out / "figures").glob("*.png")}
    assert "spectra" in names
    # The matrix figure shows relative scores: none when no delta beats random in its own task.
    assert ("transfer" in names) == report.transfer["relative"].notna().any()
    finding = next(f for f in report.findings if f.key == "transfer_within_type")
    assert "no transfer evaluation" not in finding.evidence


def test_without_the_flags_the_report_loads_no_delta(tiny_bert, toy_task, tmp_path):
    spec = tmp_path / "s.yaml"
    spec.write_text(
        f"models: [{tiny_bert}]\ntasks: [{toy_task}]\nmethods: [{{lora: {{rank: 2}}}}]\n"
        "steps: 1\nbatch_size: 8\nmax_length: 16\nseeds: [0]\nkeep_deltas: false\n"
    )
    folder = tmp_path / "study"
    assert CliRunner().invoke(app, ["run", str(spec), "--out", str(folder)]).exit_code == 0
    report = gather(folder)
    assert report.transfer.empty and report.subspace.empty
    page = write(report, tmp_path / "report").read_text()
    assert "Zero-shot task transfer" not in page

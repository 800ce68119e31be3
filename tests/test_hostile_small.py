"""Small hostile inputs refused in one line before anything trains: a negative seed, fp16 on a
CPU, and JSON lines whose text or label is an object, a list or NaN."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from petscale.errors import UserError
from petscale.settings import TrialConfig
from petscale.tasks import get_task


def test_a_negative_seed_is_refused_as_a_spec_refuses_it() -> None:
    with pytest.raises(UserError, match="--seed must be >= 0"):
        TrialConfig.parse({"seed": -1})


@pytest.mark.skipif(torch.cuda.is_available(), reason="fp16 runs on a GPU")
def test_fp16_on_a_cpu_is_refused_before_any_weight_loads(tmp_path: Path) -> None:
    from petscale.trial import run_trial

    with pytest.raises(UserError, match="fp16 needs a GPU"):
        run_trial({"model": str(tmp_path / "none"), "method": "lora", "precision": "fp16"})


@pytest.mark.parametrize(
    ("text", "label"),
    [({"a": 1}, "pos"), (["x"], "pos"), ("fine", {"k": "v"}), ("fine", float("nan"))],
)
def test_a_json_line_whose_text_or_label_is_no_text_is_refused(
    tmp_path: Path, text: object, label: object
) -> None:
    rows = [{"text": "good", "label": "pos"}, {"text": "bad", "label": "neg"}]
    rows.append({"text": text, "label": label})
    path = tmp_path / "train.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    with pytest.raises(UserError, match="line 3: the '(text|label)' value is .*not text") as err:
        get_task(str(path)).splits()
    assert "\n" not in str(err.value)

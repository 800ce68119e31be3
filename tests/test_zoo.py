"""The zoo: recorded dimensions match the real models, counting loads no weights."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoConfig, AutoModel

from petscale.zoo import assets, registry
from petscale.zoo.catalog import catalog


def _param_count(config: AutoConfig) -> int:
    with torch.device("meta"):
        return sum(p.numel() for p in AutoModel.from_config(config).parameters())


@pytest.mark.parametrize("name", ["minilm-l6", pytest.param("minilm-l3", marks=pytest.mark.real)])
def test_recorded_dimensions_match_the_real_config(name: str) -> None:
    real = AutoConfig.from_pretrained(assets.model_folder(name))
    assert _param_count(registry.package_config(name)) == _param_count(real)


def test_catalog_lists_packaged_and_bundled_models_without_building() -> None:
    rows = {row["name"]: row for row in catalog()}
    assert rows["minilm-l6"]["installed"] and rows["minilm-l6"]["parameters"] == 22_713_216
    assert rows["bert-base-uncased"]["parameters"] == 109_482_240
    assert rows["t5-v1_1-small"]["source"] == "config"
    assert not rows["t5-v1_1-small"]["installed"]


def test_a_folders_head_for_other_classes_is_drawn_afresh(tiny_bert) -> None:
    """A checkpoint with a 2-class head, tuned on a 3-class task: the head is new (and
    recorded as fresh, so a run saves it), every other weight the checkpoint's."""
    from petscale.zoo.loader import load_model

    saved = load_model(str(tiny_bert), num_labels=2)
    loaded = load_model(str(tiny_bert), num_labels=3)
    assert loaded.model.classifier.out_features == 3
    assert {"classifier.weight", "classifier.bias"} <= set(loaded.fresh)
    assert not saved.fresh
    torch.testing.assert_close(
        loaded.model.bert.encoder.layer[0].output.dense.weight,
        saved.model.bert.encoder.layer[0].output.dense.weight,
    )

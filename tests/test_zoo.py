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

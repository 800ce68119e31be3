"""Exact counts on the meta device for the bundled models; budgets fit sizes, never over."""

from __future__ import annotations

import json
import re

import pytest
from typer.testing import CliRunner

import petscale
from petscale.budget import count_method
from petscale.cli import app
from petscale.errors import UserError
from petscale.heads import head_count
from petscale.methods import make_config
from petscale.zoo.loader import meta_model
from petscale.zoo.registry import entries
from petscale.zoo.structure import structure_of

BUNDLED = sorted(n for n, e in entries().items() if e.source == "config")

#: Published totals (model cards / `num_parameters()` of the hub checkpoints).
TOTALS = {
    "t5-v1_1-small": 76_961_152,
    "t5-v1_1-base": 247_577_856,
    "t5-v1_1-large": 783_150_080,
    "t5-v1_1-xl": 2_849_757_184,
    "t5-v1_1-xxl": 11_135_332_352,
    "bloom-560m": 559_214_592,
    "bloom-1b1": 1_065_314_304,
    "bloom-1b7": 1_722_408_960,
    "bloom-3b": 3_002_557_440,
    "bloom-7b1": 7_069_016_064,
    "gpt2": 124_439_808,
    "gpt2-medium": 354_823_168,
    "gpt2-large": 774_030_080,
    "gpt2-xl": 1_557_611_200,
    "llama-2-7b": 6_738_415_616,
    "llama-3.2-1b": 1_235_814_400,
    "qwen2.5-0.5b": 494_032_768,
    "gemma-3-1b": 999_885_952,
}
#: BertModel (with pooler) alone; the classification head is counted apart.
BERT_BACKBONES = {
    "bert-base-uncased": 109_482_240,
    "bert-large-uncased": 335_141_888,
    "bert-tiny": 4_385_920,
    "bert-mini": 11_170_560,
    "bert-small": 28_763_648,
    "bert-medium": 41_373_184,
}


def test_every_model_of_the_issue_is_bundled() -> None:
    assert set(BUNDLED) == set(TOTALS) | set(BERT_BACKBONES)


@pytest.mark.parametrize("name", BUNDLED)
def test_bundled_totals_and_every_method_counts(name: str) -> None:
    network = meta_model(name)
    structure = structure_of(network)
    total = sum(p.numel() for p in network.parameters())
    head = head_count(network, structure)
    if name in BERT_BACKBONES:
        assert total - head == BERT_BACKBONES[name] and head == 2 * network.config.hidden_size + 2
    else:
        assert total == TOTALS[name] and head == 0
    for method in ("lora", "bitfit", "adapter", "prompt", "full"):
        count = count_method(network, method, make_config(method, {}))
        assert 0 < count <= total - head, method
    assert count == total - head  # full: the whole backbone


def _t5_xxl() -> dict[str, int]:
    d, ff, inner, layers, vocab = 4096, 10240, 64 * 64, 24, 32128
    return {
        # q and v of the encoder's and the decoder's self-attention (not cross-attention)
        "lora": 2 * layers * 2 * 8 * (d + inner),
        # after self-attention o and feed-forward wo, in both stacks
        "adapter": 2 * layers * 2 * (2 * d * 24 + 24 + d),
        # added zero biases: q,k,v (inner), o (d), wi_0, wi_1, wo; 2 norms per encoder block,
        # 3 per decoder block, 2 final norms, the LM head's output bias
        "bitfit": layers * (3 * inner + d + 2 * ff + d + 2 * d)
        + layers * (3 * inner + d + 2 * ff + d + 3 * d)
        + 2 * d
        + vocab,
        "prompt": 100 * d,
    }


def _bloom_7b1() -> dict[str, int]:
    d, layers, vocab = 4096, 30, 250880
    return {
        "lora": layers * 8 * (d + 3 * d),  # the fused query_key_value projection
        "adapter": layers * 2 * (2 * d * 24 + 24 + d),
        # qkv 3d, dense d, h_to_4h 4d, 4h_to_h d, 2 norms; embedding and final norms; LM head
        "bitfit": layers * (3 * d + d + 4 * d + d + 2 * d) + 2 * d + vocab,
        "prompt": 100 * d,
    }


@pytest.mark.parametrize(
    ("name", "expected"), [("t5-v1_1-xxl", _t5_xxl()), ("bloom-7b1", _bloom_7b1())]
)
def test_default_budgets_follow_the_convention(name: str, expected: dict[str, int]) -> None:
    for method, count in expected.items():
        assert petscale.count(model=name, method=method)["trainable_params"] == count, method


@pytest.mark.parametrize(
    ("method", "knob", "budget", "expected"),
    [
        ("prompt", "length", 10_000, 10_000 // 768),
        ("adapter", "bottleneck", 1_000_000, (1_000_000 // 24 - 768) // (2 * 768 + 1)),
        ("lora", "rank", 100_000, 100_000 // (24 * 1536)),
        ("bitfit", "layers", 30_000, 30_000 // (4 * 768 + 3072 + 768 + 2 * 768)),
    ],
)
def test_budget_picks_the_largest_size_that_fits(method, knob, budget, expected) -> None:
    result = petscale.count(model="bert-base-uncased", method=method, budget=budget)
    assert result["options"][knob] == expected
    assert result["trainable_params"] <= budget
    bigger = petscale.count(model="bert-base-uncased", method=method, **{knob: expected + 1})
    assert bigger["trainable_params"] > budget


@pytest.mark.parametrize(
    ("method", "budget", "message"),
    [
        ("lora", 10**15, "is larger than the model ("),
        ("bitfit", 10**6, "more than bitfit can hold on this model"),  # past its 12 blocks
    ],
)
def test_budget_no_size_can_reach_is_an_error(method, budget, message) -> None:
    with pytest.raises(UserError, match=re.escape(message)):
        petscale.count(model="bert-base-uncased", method=method, budget=budget)


def test_budget_below_the_smallest_size_is_an_error() -> None:
    with pytest.raises(UserError, match="below the smallest"):
        petscale.count(model="bert-tiny", method="prompt", budget=10)


def test_count_command_json() -> None:
    runner = CliRunner()
    result = runner.invoke(
        app,
        ["count", "--model", "t5-v1_1-small", "--method", "prompt", "--budget", "5000", "--json"],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["options"]["length"] == 5000 // 512 and report["trainable_params"] == 9 * 512

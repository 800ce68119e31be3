"""``head: auto``: encoders, T5 and decoders on one head-free ladder (a frozen head where there is
one, label words where the model answers in words), and the pairs that cannot exist."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

import petscale
import tiny
from petscale.errors import UserError
from petscale.heads import answers_in_words, configure_head, head_parameters, resolve_head
from petscale.ids import trial_id
from petscale.study.spec import expand, load_spec, parse_spec
from petscale.zoo import assets
from petscale.zoo.structure import structure_of

LADDER = {
    "models": ["minilm-l3", "gemma3-270m"],
    "untuned": False,
    "tasks": ["trec"],
    "methods": ["full", "probe", "lora"],
    "head": "auto",
}


def count(model: str, method: str) -> dict[str, int]:
    return {"trainable_params": 1000}


def test_auto_is_frozen_with_a_head_and_label_words_without() -> None:
    assert resolve_head("auto", has_head=True) == "frozen"
    assert resolve_head("auto", has_head=False) == "label-words"
    for mode in ("trainable", "label-words"):
        assert resolve_head(mode, has_head=False) == mode
    with pytest.raises(UserError, match="no classification head to freeze; use head 'auto'"):
        resolve_head("frozen", has_head=False, model="gemma3-270m")
    with pytest.raises(UserError, match="unknown --head"):
        resolve_head("free", has_head=True)


def test_models_answering_in_words_are_known_from_their_configs() -> None:
    assert [answers_in_words(m) for m in ("minilm-l3", "gemma3-270m", "gpt2")] == [
        False,
        True,
        True,
    ]
    assert not answers_in_words("no-such-model")  # the trial says why, later


def test_auto_freezes_an_encoder_head_as_frozen_does() -> None:
    heads = []
    for mode in ("frozen", "auto"):
        net = tiny.model("bert")
        configure_head(net, structure_of(net), mode, seed=4)
        params = head_parameters(net, structure_of(net))
        assert not any(p.requires_grad for p in params.values())
        heads.append({n: p.detach().clone() for n, p in params.items()})
    assert all(torch.equal(heads[0][n], heads[1][n]) for n in heads[0])


def test_frozen_on_a_model_without_a_head_is_an_error() -> None:
    net = tiny.model("gpt2", "lm")
    configure_head(net, structure_of(net), "auto", 0)()  # nothing to set: label words
    with pytest.raises(UserError, match="this gpt2 model answers in words"):
        configure_head(net, structure_of(net), "frozen", 0)


def test_spec_auto_puts_a_decoder_on_the_ladder_without_probe() -> None:
    configs = expand(parse_spec(LADDER), count=count)
    pairs = [(c["model"], c["method"]) for c in configs]
    assert pairs == [
        ("minilm-l3", "full"),
        ("minilm-l3", "probe"),
        ("minilm-l3", "lora"),
        ("gemma3-270m", "full"),
        ("gemma3-270m", "lora"),
    ]
    # resolved per model: an encoder's trials are those of head: frozen (the same ids)
    heads = ["frozen", "trainable", "frozen", "label-words", "label-words"]
    assert [c["head"] for c in configs] == heads
    frozen = expand(parse_spec({**LADDER, "models": ["minilm-l3"], "head": "frozen"}), count=count)
    assert configs[:3] == frozen


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"head": "frozen"}, "head: frozen: gemma3-270m answers in words"),
        ({"head": "trainable"}, "methods.probe trains the classification head alone"),
        ({"head": "label-words"}, "gemma3-270m answers in words and has none: use head: auto"),
    ],
)
def test_spec_names_a_head_the_model_lacks(change: dict, error: str) -> None:
    with pytest.raises(UserError, match=error) as caught:
        expand(parse_spec({**LADDER, **change}), count=count)
    assert "\n" not in str(caught.value)


def test_encoder_trial_ids_are_unchanged() -> None:
    # ids measured with the code before `auto` existed (commit cfdb5c0)
    spec = {
        "models": ["minilm-l3"],
        "tasks": ["trec"],
        "methods": ["lora", "probe"],
        "untuned": False,
    }
    for head in ("frozen", "auto"):
        configs = expand(parse_spec({**spec, "head": head}))
        assert [trial_id(c) for c in configs] == ["19748d510222ae51", "8db412e463c6b7dd"]
    # the scaling study's 792 encoder trials, now beside its decoder rung
    scaling = load_spec(Path(__file__).parents[1] / "examples" / "scaling.yaml")
    configs = [c for c in expand(scaling, count=count) if c["model"] != "gemma3-270m"]
    ids = sorted(trial_id(c) for c in configs if c["method"] != "untuned")
    assert len(ids) == 792  # the untuned floors are new trials beside them
    assert len(configs) - len(ids) == 72  # one per (model, task, seed, head)
    assert hashlib.sha256(",".join(ids).encode()).hexdigest()[:16] == "9ac2d42518b9862b"


def test_a_decoder_tunes_with_head_auto_and_refuses_frozen(toy_task: Path, tmp_path) -> None:
    base = tmp_path / "decoder"
    config = AutoConfig.for_model("llama", **{**tiny.CONFIGS["llama"], "vocab_size": 30522})
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(config).save_pretrained(base)
    AutoTokenizer.from_pretrained(assets.model_folder("minilm-l6")).save_pretrained(base)
    settings = dict(model=str(base), task=str(toy_task), method="lora", steps=1, batch_size=4)
    result = petscale.tune(**settings, max_length=16, head="auto", eval_limit=4)
    assert result["head_params"] == 0 and result["trainable_params"] > 0
    with pytest.raises(UserError, match="answers in words and has no classification head"):
        petscale.tune(**settings, max_length=16, head="frozen", eval_limit=4)

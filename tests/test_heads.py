"""Head modes: trainable, frozen (seeded), label words (no parameters)."""

from __future__ import annotations

import pytest
import torch

import tiny
from petscale.errors import UserError
from petscale.heads import (
    LABEL_WORDS_SCALE,
    LabelWordsHead,
    configure_head,
    head_count,
    head_parameters,
    retarget_label_words,
)
from petscale.zoo.structure import structure_of


class WordPieces:
    """A stand-in tokenizer: each word is its characters' ids (several pieces per word)."""

    def __call__(self, text: str, add_special_tokens: bool = True) -> dict[str, list[int]]:
        return {"input_ids": [3 + ord(c) % 90 for c in text]}


WORDS = ["bad", "okay", "good"]


@pytest.mark.parametrize("family", tiny.ENCODERS + ("t5", "gpt2", "bloom"))
def test_label_words_head_has_no_parameters_and_scores_by_cosine(family: str) -> None:
    net = tiny.model(family)
    structure = structure_of(net)
    (name,) = structure.modules("head")
    original = net.get_submodule(name)
    inputs = tiny.batch(family)
    restore = configure_head(net, structure, "label-words", 0, WORDS, WordPieces())
    head = net.get_submodule(name)
    assert isinstance(head, LabelWordsHead)
    assert head_parameters(net, structure) == {} and head_count(net, structure) == 0
    table = net.get_input_embeddings().weight
    expected = torch.stack([table[WordPieces()(w)["input_ids"]].mean(0) for w in WORDS])
    torch.testing.assert_close(head.words, expected)
    logits = tiny.run(net, family, inputs)
    assert logits.shape == (2, len(WORDS))
    assert logits.abs().max() <= LABEL_WORDS_SCALE + 1e-4
    restore()
    assert net.get_submodule(name) is original


def test_label_words_retarget_to_another_tasks_classes_and_back() -> None:
    net = tiny.model("bert")
    structure = structure_of(net)
    configure_head(net, structure, "label-words", 0, WORDS, WordPieces())
    for p in net.parameters():
        p.requires_grad_(False)  # a delta that left the embeddings alone
    inputs = tiny.batch("bert")
    source = tiny.run(net, "bert", inputs)
    restore = retarget_label_words(net, structure, ["no", "yes"], WordPieces())
    table = net.get_input_embeddings().weight
    yes = table[WordPieces()("yes")["input_ids"]].mean(0)
    torch.testing.assert_close(net.classifier.words[1], yes)
    assert tiny.run(net, "bert", inputs).shape == (2, 2)
    restore()
    assert torch.equal(tiny.run(net, "bert", inputs), source)
    net.get_input_embeddings().weight.requires_grad_(True)  # full fine-tuning tuned them
    with pytest.raises(UserError, match="input embeddings were tuned"):
        retarget_label_words(net, structure, ["no", "yes"], WordPieces())
    with pytest.raises(UserError, match="only a head of label words"):
        retarget_label_words(tiny.model("bert"), structure, ["no", "yes"], WordPieces())


def test_label_words_scores_pooled_features() -> None:
    words = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    head = LabelWordsHead(words, first_token=False, scale=10.0)
    out = head(torch.tensor([[3.0, 0.0], [1.0, 1.0]]))
    torch.testing.assert_close(out, torch.tensor([[10.0, 0.0], [7.0710678, 7.0710678]]))


def test_label_words_needs_words_and_a_tokenizer() -> None:
    net = tiny.model("bert")
    with pytest.raises(UserError, match="label words"):
        configure_head(net, structure_of(net), "label-words", 0)
    with pytest.raises(UserError, match="2 label words"):
        configure_head(net, structure_of(net), "label-words", 0, WORDS[:2], WordPieces())


def test_frozen_head_is_seeded_and_fixed() -> None:
    heads = []
    for _ in range(2):
        net = tiny.model("bert", seed=len(heads))  # different models, same seed for the head
        restore = configure_head(net, structure_of(net), "frozen", seed=4)
        params = head_parameters(net, structure_of(net))
        assert not any(p.requires_grad for p in params.values())
        heads.append({n: p.detach().clone() for n, p in params.items()})
        restore()
        assert all(p.requires_grad for p in params.values())
    assert all(torch.equal(heads[0][n], heads[1][n]) for n in heads[0])


def test_models_without_a_head_are_left_alone() -> None:
    net = tiny.model("t5", "lm")
    configure_head(net, structure_of(net), "label-words", 0, WORDS, WordPieces())()
    with pytest.raises(UserError, match="--head"):
        configure_head(net, structure_of(net), "linear", 0)

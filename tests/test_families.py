"""The Family records: what each architecture's record says matches its tiny model, and no
module but zoo/structure.py decides anything by ``model_type``."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import tiny
from petscale.zoo.structure import FAMILIES, Family, is_transposed, position_limit, structure_of

VARIANTS = tiny.variants() + [(f, h) for f in tiny.LLAMA_STYLE for h in ("classify", "lm")]
#: positions of the tiny configs (RoBERTa and MPNet: 66 minus the padding index and one)
LIMITS = {"bert": 64, "roberta": 64, "mpnet": 64, "t5": None, "gpt2": 64, "bloom": None}
SOURCE = Path(__file__).resolve().parents[1] / "src" / "petscale"


@pytest.mark.parametrize(("family", "head"), VARIANTS, ids=[f"{f}-{h}" for f, h in VARIANTS])
def test_the_record_matches_the_model(family: str, head: str) -> None:
    net = tiny.model(family, head)
    structure = structure_of(net)
    arch = structure.arch
    assert arch is FAMILIES[family] and arch.kind == structure.kind
    assert arch.transposed == is_transposed(net.get_submodule(structure.modules("q")[0]))
    assert position_limit(net.config) == LIMITS.get(family, 64)
    stack, decoder = structure.input_stacks()
    (words,) = structure.modules("word_embeddings")
    if decoder is None:  # the stack owns the word embeddings
        assert words.startswith(f"{stack}.") if stack else True
        assert net.get_submodule(stack).get_input_embeddings() is net.get_input_embeddings()
    else:  # T5: both stacks read the shared embeddings
        for name in (stack, decoder):
            assert net.get_submodule(name).embed_tokens is net.get_submodule(words)


def test_a_slip_in_a_record_fails_at_once() -> None:
    with pytest.raises(ValueError, match="head_reads|'middle'"):
        Family("toy", "encoder", {}, head_reads="middle", stack_depth=2)


def test_only_the_structure_reads_model_type() -> None:
    readers = sorted(
        str(path.relative_to(SOURCE))
        for path in SOURCE.rglob("*.py")
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.Attribute) and node.attr == "model_type"
    )
    assert set(readers) <= {"zoo/structure.py"}, readers

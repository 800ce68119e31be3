"""Methods answer for themselves: code outside ``petscale.methods`` asks a method's declarations
(``sizing``, ``study_role``, ``head_only`` ...) and never compares its name; the declarations
import no torch."""

from __future__ import annotations

import ast
import dataclasses
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from petscale import methods
from petscale.errors import UserError
from petscale.methods import configs
from petscale.methods.adapter import ACTIVATIONS
from petscale.methods.lora import LoraLinear
from petscale.methods.sparse import SparseLinear

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "src" / "petscale"
# The walk is the one benchmarks/code_shape.py counts with.
_SHAPE = importlib.util.spec_from_file_location("code_shape", ROOT / "benchmarks/code_shape.py")
code_shape = importlib.util.module_from_spec(_SHAPE)
_SHAPE.loader.exec_module(code_shape)
name_comparisons = code_shape.name_comparisons


def test_the_walk_finds_a_comparison_of_a_method_name() -> None:
    tree = ast.parse('a == "lora"\nb in ("full", "x")\nc != d\n"probe" not in e\nf = "apet"\n')
    assert name_comparisons(tree, set(methods.METHODS)) == [
        (1, "lora"),
        (2, "full"),
        (4, "probe"),
    ]


def test_no_code_outside_methods_compares_a_method_name() -> None:
    names = set(methods.METHODS)
    found = [
        f"{path.relative_to(SOURCE)}:{line} compares {name!r}"
        for path in sorted(SOURCE.rglob("*.py"))
        if path.relative_to(SOURCE).parts[0] != "methods"
        for line, name in name_comparisons(ast.parse(path.read_text(encoding="utf-8")), names)
    ]
    assert found == [], "ask the method's declarations (petscale.methods) instead"


def test_the_method_declarations_import_no_torch() -> None:
    code = (
        "import sys, petscale.methods as m\n"
        "m.make_config('apet', {'match': 'lora'}); m.option_names('lora'); m.sizing('lora')\n"
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("name", list(methods.CONFIGS))
def test_a_built_in_declares_through_the_config_its_module_names(name: str) -> None:
    declared = methods.config_class(name)
    assert methods.get_method(name).config_class is declared
    assert declared.sizing in configs.SIZINGS
    assert declared.study_role in (*configs.ROLES, None)
    fields = {f.name for f in dataclasses.fields(declared)}
    if declared.sizing == "size":
        assert declared.size_option in fields
    if declared.sizing == "native":
        assert {"budget", "match"} <= fields
    if declared.pattern_option is not None:
        assert declared.pattern_option in fields


def test_the_declarations_of_the_built_ins() -> None:
    by = {name: methods.sizing(name) for name in methods.CONFIGS}
    assert by == {
        "full": "fixed",
        "lora": "size",
        "prompt": "size",
        "bitfit": "size",
        "adapter": "size",
        "apet": "native",
        "probe": "fixed",
        "untuned": "fixed",
    }
    assert methods.reference_method() == "full" and methods.floor_method() == "untuned"
    assert methods.methods_in_role("baseline") == ("probe",)
    assert [m for m in methods.CONFIGS if methods.head_only(m)] == ["probe"]
    assert [m for m in methods.CONFIGS if not methods.matchable(m)] == ["apet"]
    assert methods.study_role("lora") is None and methods.study_role("not-a-method") is None


@pytest.mark.parametrize(
    ("method", "options", "structure"),
    [
        ("lora", {"rank": 4}, "lora"),
        ("apet", {}, "apet-discrete"),
        ("apet", {"pattern": "adjacent", "op": "add"}, "apet-adjacent"),
        ("apet", {"op": "plug"}, "apet-plug-discrete"),
        ("apet", {"op": "bias", "pattern": None}, "apet-bias-discrete"),
        ("apet", {"targets": "q,v"}, "apet-q+v-discrete"),
        ("apet", {"granularity": "tensor", "pattern": "adjacent"}, "apet-tensor-adjacent"),
        ("someone-elses", {"op": "plug"}, "someone-elses"),
    ],
)
def test_a_method_names_its_structure(method: str, options: dict, structure: str) -> None:
    assert methods.structure_name(method, options) == structure


def test_the_pattern_and_what_the_trained_tensors_are() -> None:
    assert methods.pattern_of("apet", {}) == "discrete"
    assert methods.pattern_of("apet", {}, default=False) is None
    assert methods.pattern_of("apet", {"pattern": "adjacent"}, default=False) == "adjacent"
    assert methods.pattern_of("lora", {"pattern": "adjacent"}) is None
    assert methods.weight_delta("full", {}) == "in place"
    assert methods.weight_delta("lora", {}) == "added"
    assert methods.weight_delta("apet", {"op": "add"}) == "added"
    assert methods.weight_delta("apet", {"op": "plug"}) is None
    assert methods.weight_delta("adapter", {}) is None


def test_a_plugin_config_is_sized_as_it_says() -> None:
    @dataclasses.dataclass
    class Knob(configs.MethodConfig):
        width: int = 4
        size_option = "width"

    @dataclasses.dataclass
    class Native(configs.MethodConfig):
        budget: int | None = None
        match: str | None = None

    @dataclasses.dataclass
    class Rank(configs.LoraConfig):
        pass

    assert (Knob.sizing, Native.sizing, Rank.sizing) == ("size", "native", "size")
    assert configs.MethodConfig.sizing == "fixed"


def test_a_match_names_a_matchable_method() -> None:
    with pytest.raises(UserError, match="'apet' is not a method to match; choose: full"):
        methods.make_config("apet", {"match": "apet"})
    with pytest.raises(UserError, match="either --budget or --match"):
        methods.make_config("apet", {"match": "apet", "budget": 3})


def test_the_adapters_activations_are_the_names_its_config_takes() -> None:
    assert tuple(ACTIVATIONS) == configs.ACTIVATIONS


def test_a_layer_s_weight_update_is_what_it_adds_to_its_base_weight() -> None:
    torch.manual_seed(0)
    lora = LoraLinear(nn.Linear(5, 3), rank=2, alpha=4.0, dropout=0.0)
    nn.init.normal_(lora.lora_B)
    assert torch.equal(lora.weight_update(), lora.delta_weight())
    sparse = SparseLinear(nn.Linear(5, 3), torch.tensor([1, 7, 8]))
    with torch.no_grad():
        sparse.values.copy_(torch.tensor([0.5, -1.0, 2.0]))
    update = sparse.weight_update()
    assert update.flatten()[[1, 7, 8]].tolist() == [0.5, -1.0, 2.0]
    assert int((update != 0).sum()) == 3
    x = torch.randn(2, 5)
    torch.testing.assert_close(sparse(x), sparse.base(x) + x @ update.T)

"""What each method declares, without torch: its options (a config dataclass, each field a
command-line option) and how the rest of petscale treats it (how a budget sizes it, its role
in a study, whether it can be matched, whether only the head trains, its structure's name).

Code outside ``petscale.methods`` asks these declarations (through the queries of
:mod:`petscale.methods`) instead of comparing method names. The modules that attach a method
(``methods/lora.py`` ...) import their config from here and name it ``CONFIG``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from petscale.checks import one_of
from petscale.errors import UserError

if TYPE_CHECKING:  # only a type here: the structure module imports torch
    from petscale.zoo.structure import Structure

#: How ``--budget`` sizes a method: ``fixed`` (no budget: full, probe, untuned), ``size`` (the
#: budget picks its ``size_option``: a rank, a bottleneck ...), ``native`` (the config holds
#: the budget itself: APET's K, with ``budget`` and ``match`` fields).
SIZINGS = ("fixed", "size", "native")
#: A method's role in a study's analyses: ``reference`` (the line every method is held
#: against: full fine-tuning), ``baseline`` (a fixed comparison point: the linear probe),
#: ``floor`` (what a model that learned nothing scores: untuned); None: a tuned method.
ROLES = ("reference", "baseline", "floor")
#: What a method's trained tensors are to the base weights (``analysis.subspace``):
#: ``in place`` (the weights themselves: the delta is trained minus pretrained), ``added`` (its
#: layers add an update onto base weights, ``weight_update()``); None: tensors of their own.
WEIGHT_DELTAS = ("in place", "added")


def positive(name: str, value: float | None) -> None:
    """Shared check: an option that must be > 0."""
    if value is not None and value <= 0:
        raise UserError(f"--{name.replace('_', '-')} must be positive, got {value}")


@dataclass
class MethodConfig:
    """Options of a method. Subclasses add fields; every field is a command-line option."""

    #: the option that ``--budget`` tunes (rank, bottleneck, prompt length ...), if any
    size_option: ClassVar[str | None] = None
    #: how a budget sizes it (``SIZINGS``); a subclass that does not say is sized by ``size``
    #: where it sets ``size_option``, ``native`` where it has a ``budget`` field of its own
    sizing: ClassVar[str] = "fixed"
    #: its role in a study's analyses (``ROLES``); None: a tuned method, a point on a curve
    study_role: ClassVar[str | None] = None
    #: whether ``match`` can name it (its default count is a budget); False for APET, whose
    #: default size is itself a match
    matchable: ClassVar[bool] = True
    #: True for a method that trains nothing but the classification head (the probe): its
    #: trial's head trains whatever the study asks, and a model without a head cannot run it
    head_only: ClassVar[bool] = False
    #: the option the analyses read as a placement pattern (APET's adjacent | discrete), if any
    pattern_option: ClassVar[str | None] = None
    #: learning rate used when the user gives none
    default_lr: ClassVar[float] = 1e-3
    #: learning-rate schedule after warmup when the user gives none (choices.SCHEDULES)
    default_schedule: ClassVar[str] = "linear"
    #: False for a method whose trial takes no step and only scores the model (``untuned``)
    trains: ClassVar[bool] = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "sizing" not in cls.__dict__:  # a plugin's config, as it was before sizing existed
            if cls.size_option is not None:
                cls.sizing = "size"
            elif "budget" in cls.__dict__.get("__annotations__", {}):
                cls.sizing = "native"

    def validate(self) -> None:
        """Raise UserError for an impossible option; subclasses extend."""

    @classmethod
    def max_size(cls, structure: Structure) -> int | None:
        """The largest value ``size_option`` can take on a model (None: no model-set limit)."""
        return None

    @classmethod
    def structure_name(cls, method: str, options: Mapping[str, Any]) -> str:
        """The name the analyses give the structure of ``method`` (this config's registered
        name) run with ``options``: the method's name, unless its options shape it."""
        return method

    @classmethod
    def weight_delta(cls, options: Mapping[str, Any]) -> str | None:
        """What the trained tensors are to the base weights, with ``options``
        (``WEIGHT_DELTAS``); None: tensors of their own, no base weight's delta."""
        return None

    @classmethod
    def default(cls, option: str) -> Any:
        """An option's default (a field with a default factory: a fresh one)."""
        field = next(f for f in dataclasses.fields(cls) if f.name == option)
        if field.default_factory is not dataclasses.MISSING:
            return field.default_factory()
        return field.default

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# -- the methods' configs -------------------------------------------------------------------


@dataclass
class FullConfig(MethodConfig):
    default_lr: ClassVar[float] = 5e-5
    study_role: ClassVar[str | None] = "reference"

    @classmethod
    def weight_delta(cls, options: Mapping[str, Any]) -> str | None:
        return "in place"


@dataclass
class LoraConfig(MethodConfig):
    rank: int = 8
    alpha: float = 16.0
    dropout: float = 0.0
    targets: str = "q,v"  # self-attention query and value (fused QKV where the model has one)

    size_option: ClassVar[str | None] = "rank"
    sizing: ClassVar[str] = "size"
    default_lr: ClassVar[float] = 1e-3

    def validate(self) -> None:
        positive("rank", self.rank)
        positive("alpha", self.alpha)
        if not 0 <= self.dropout < 1:
            raise UserError(f"--dropout must be in [0, 1), got {self.dropout}")

    @classmethod
    def weight_delta(cls, options: Mapping[str, Any]) -> str | None:
        return "added"


#: The adapters' activations (their modules: ``methods.adapter.ACTIVATIONS``).
ACTIVATIONS = ("gelu", "relu", "tanh", "silu")


@dataclass
class AdapterConfig(MethodConfig):
    bottleneck: int = 24
    activation: str = "gelu"

    size_option: ClassVar[str | None] = "bottleneck"
    sizing: ClassVar[str] = "size"
    default_lr: ClassVar[float] = 1e-3

    def validate(self) -> None:
        positive("bottleneck", self.bottleneck)
        one_of("--activation", self.activation, ACTIVATIONS)


#: How prompt tuning's soft tokens start (``methods.prompt``).
INITS = ("vocab", "uniform", "normal")


@dataclass
class PromptConfig(MethodConfig):
    length: int = 100
    # "vocab": embeddings of tokens drawn uniformly from the vocabulary (OpenDelta's default
    # initialises from token embeddings too); "uniform": U(-0.5, 0.5); "normal": N(0, 1),
    # PEFT's random init (an nn.Embedding's). All use torch's global generator, which a trial
    # seeds with --seed.
    init: str = "vocab"

    size_option: ClassVar[str | None] = "length"
    sizing: ClassVar[str] = "size"
    default_lr: ClassVar[float] = 3e-2

    def validate(self) -> None:
        positive("length", self.length)
        one_of("--init", self.init, INITS)


BIAS_SETS = ("convention", "all")


@dataclass
class BitFitConfig(MethodConfig):
    biases: str = "convention"  # the study's set; "all" adds every other bias of the backbone
    layers: int | None = None  # only the top N blocks of each stack (None: everything)

    size_option: ClassVar[str | None] = "layers"
    sizing: ClassVar[str] = "size"
    default_lr: ClassVar[float] = 3e-3

    def validate(self) -> None:
        one_of("--biases", self.biases, BIAS_SETS)
        positive("layers", self.layers)

    @classmethod
    def max_size(cls, structure: Structure) -> int | None:
        return max(structure.blocks().values(), default=None)


#: APET's operations, placement patterns and granularities (``methods.apet``, docs/APET.md).
OPS = ("add", "plug", "concat", "bias")
PATTERNS = ("adjacent", "discrete")
GRANULARITIES = ("element", "tensor")


@dataclass
class ApetConfig(MethodConfig):
    budget: int | None = None  # exact K; None: the sizing step sets it from ``match``
    match: str | None = None  # None (and no budget): ``default_match``; the registry checks it
    pattern: str = "discrete"
    op: str = "add"
    granularity: str = "element"
    targets: str | None = None  # None: the op's default (ADD_TARGETS, PLUG_TARGETS, bitfit's)
    seed: int = 0

    size_option: ClassVar[str | None] = None  # the budget is native
    sizing: ClassVar[str] = "native"
    matchable: ClassVar[bool] = False  # its default count is a match (``default_match``)
    pattern_option: ClassVar[str | None] = "pattern"
    default_match: ClassVar[str] = "lora"  # K when neither budget nor match is given
    default_lr: ClassVar[float] = 1e-3
    default_schedule: ClassVar[str] = "constant"  # as the study's published APET runs

    def validate(self) -> None:
        positive("budget", self.budget)
        if self.budget is not None and self.match is not None:
            raise UserError("give either --budget or --match for apet, not both")
        for name, value, allowed in (
            ("pattern", self.pattern, PATTERNS),
            ("op", self.op, OPS),
            ("granularity", self.granularity, GRANULARITIES),
        ):
            if value not in allowed:
                raise UserError(f"--{name} {value!r}: choose one of {', '.join(allowed)}")
        if self.op == "concat" and self.targets is not None:
            raise UserError("--targets does not apply to apet --op concat (soft tokens)")

    @classmethod
    def structure_name(cls, method: str, options: Mapping[str, Any]) -> str:
        """``apet-<pattern>`` at the default op, targets and granularity, else
        ``apet-<op>[-<targets>][-<granularity>]-<pattern>`` (``apet-plug-discrete``,
        ``apet-q+v-discrete`` ...)."""
        parts = [method]
        if (options.get("op") or cls.op) != cls.op:
            parts.append(options["op"])
        if options.get("targets"):
            parts.append(str(options["targets"]).replace(",", "+"))
        if (options.get("granularity") or cls.granularity) != cls.granularity:
            parts.append(options["granularity"])
        return "-".join([*parts, options.get("pattern") or cls.pattern])

    @classmethod
    def weight_delta(cls, options: Mapping[str, Any]) -> str | None:
        return "added" if options.get("op", cls.op) == "add" else None  # op add: SparseLinear


@dataclass
class ProbeConfig(MethodConfig):
    default_lr: ClassVar[float] = 1e-3
    study_role: ClassVar[str | None] = "baseline"
    head_only: ClassVar[bool] = True


@dataclass
class UntunedConfig(MethodConfig):
    trains: ClassVar[bool] = False
    study_role: ClassVar[str | None] = "floor"

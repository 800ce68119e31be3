"""APET (Su et al. 2023): exactly K trainable entries of arbitrary structure.

Options: ``budget`` K (or ``match``: K = that method's default count on the model; neither:
LoRA's), ``pattern`` adjacent|discrete, ``op`` add|plug|concat|bias, ``granularity``
element|tensor, ``targets`` and ``seed``. The sizing step
(:func:`petscale.budget.resolve_config`) turns a ``match`` into K before ``attach``, which takes
a plain K. Placement rules are in
:mod:`petscale.methods.apet_placement`, the plug/concat/bias modules in
:mod:`petscale.methods.apet_ops`, storage and forward in :mod:`petscale.methods.sparse`;
``docs/APET.md`` describes all of it.

Each trained tensor is stored as a 1-D vector of values (the only Parameters) plus sorted
flat indices (a buffer). The indices are a pure function of the config; they are saved beside
the values as a check.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from petscale.errors import UserError
from petscale.methods.apet_ops import (
    BiasMerge,
    Plug,
    Plugged,
    SoftPrompt,
    SparseBias,
    initial_prompt,
    plug_width,
    prompt_length,
)
from petscale.methods.apet_placement import draw, element_shares, generator, tensor_shares
from petscale.methods.base import (
    Delta,
    SoftTokens,
    Unmergeable,
    freeze,
    new_tensor,
)
from petscale.methods.bitfit import CONVENTION_ROLES, bias_width, selected
from petscale.methods.configs import OPS as OPS
from petscale.methods.configs import ApetConfig, BitFitConfig
from petscale.methods.soft_tokens import attach_soft_tokens, output_span
from petscale.methods.sparse import SparseLinear, index_dtype, runs
from petscale.methods.targets import linear_targets, picked
from petscale.surgery import replace_module
from petscale.zoo.structure import Structure, in_out_features

#: Default targets of ``add``: every self-attention and feed-forward matrix.
ADD_TARGETS = "q,k,v,attn_out,ffn_in,ffn_out"
#: Default positions of ``plug``: where the study's adapters sit.
PLUG_TARGETS = "attn_out,ffn_out"
VALUES, INDICES = "apet_values", "apet_indices"
#: The submodule under which ``bias`` registers its site on the module owning the bias.
BIAS_SITE = "apet_bias"


class ApetDelta(Delta):
    """K values at K positions of some tensors; ``sites`` maps tensor name -> sparse module."""

    def __init__(self, model: nn.Module, structure: Structure, config: ApetConfig, budget: int):
        super().__init__(model, structure, "apet", config)
        self.budget = budget  # requested; trainable_params is what was reached
        self.sites: dict[str, SparseLinear | SoftPrompt | SparseBias] = {}

    def parameters(self) -> dict[str, nn.Parameter]:
        return {f"{name}.{VALUES}": site.values for name, site in self.sites.items()}

    def indices(self) -> dict[str, torch.Tensor]:
        return {name: site.indices for name, site in self.sites.items()}

    def runs(self) -> list[tuple[str, int, int]]:
        """(tensor name, start, length) of every contiguous run of trainable flat positions."""
        if any(idx.device.type == "meta" for idx in self.indices().values()):
            raise UserError("runs are not drawn on the meta device; attach to a real model")
        return [(name, s, n) for name, idx in self.indices().items() for s, n in runs(idx)]

    def state_dict(self) -> dict[str, torch.Tensor]:
        saved = {f"{name}.{INDICES}": idx.detach().cpu() for name, idx in self.indices().items()}
        return {**super().state_dict(), **saved}

    def load_state_dict(self, tensors: dict[str, torch.Tensor]) -> None:
        for name, idx in self.indices().items():
            saved = tensors.get(f"{name}.{INDICES}")
            if saved is not None and not torch.equal(saved.long(), idx.long().cpu()):
                raise UserError(
                    f"saved apet positions of {name} differ from this config's: same seed, "
                    "budget, targets and model are needed"
                )
        super().load_state_dict({k: v for k, v in tensors.items() if not k.endswith(INDICES)})


def place(
    tensors: dict[str, torch.Tensor], budget: int, config: ApetConfig
) -> dict[str, torch.Tensor]:
    """Sorted flat positions per tensor name (only tensors with a share); meta: shapes only."""
    names = list(tensors)
    sizes = [tensors[n].numel() for n in names]
    if budget > sum(sizes):
        raise UserError(
            f"the apet budget {budget:,} exceeds the {sum(sizes):,} entries the apet targets hold; "
            "lower it or widen --targets"
        )
    split = element_shares if config.granularity == "element" else tensor_shares
    shares = split(sizes, budget, config.seed)
    if not any(shares):
        raise UserError(
            f"the apet budget {budget:,} holds no whole target tensor (the smallest has "
            f"{min(sizes):,} entries); raise it or use --granularity element"
        )
    out: dict[str, torch.Tensor] = {}
    for name, size, share in zip(names, sizes, shares, strict=True):
        if share == 0:
            continue
        weight = tensors[name]
        if weight.device.type == "meta":
            idx = torch.empty(share, dtype=index_dtype(size), device="meta")
        else:
            idx = draw(size, share, config.pattern, generator(config.seed, name))
        out[name] = idx.to(index_dtype(size))
    return out


def _attach_add(delta: ApetDelta, targets: str) -> None:
    model = delta.model
    modules = linear_targets(model, delta.structure, targets)
    weights = {f"{name}.weight": model.get_submodule(name).weight for name in modules}
    for tensor, idx in place(weights, delta.budget, delta.config).items():
        name = tensor.removesuffix(".weight")
        base = model.get_submodule(name)
        delta.sites[tensor] = layer = SparseLinear(base, idx)
        delta.layers.append(layer)
        replace_module(model, name, layer)
        delta.on_detach(lambda name=name, base=base: replace_module(model, name, base))


def _attach_plug(delta: ApetDelta, targets: str) -> None:
    model, config = delta.model, delta.config
    modules = linear_targets(model, delta.structure, targets)
    dims = {name: in_out_features(model.get_submodule(name))[1] for name in modules}
    width = plug_width(delta.budget, min(dims.values()), len(modules))
    plugs: dict[str, Plug] = {}
    for name in modules:
        like = model.get_submodule(name).weight
        meta = like.device.type == "meta"
        gen = None if meta else generator(config.seed, f"{name}.plug")
        plugs[name] = plug = Plug(dims[name], width, like, gen)
        base = replace_module(model, name, Plugged(model.get_submodule(name), plug))
        delta.on_detach(lambda name=name, base=base: replace_module(model, name, base))
        delta.layers.append(Unmergeable(f"apet's plug after {name} (a module of its own)"))
    weights = {
        f"{name}.plug.{part}.weight": getattr(plug, part).weight
        for name, plug in plugs.items()
        for part in ("down", "up")
    }
    for tensor, idx in place(weights, delta.budget, config).items():
        name, part, _ = tensor.rsplit(".", 2)
        layer = plugs[name.removesuffix(".plug")].sparsify({part: idx})[part]
        delta.sites[tensor] = layer


def _attach_concat(delta: ApetDelta) -> None:
    model, config = delta.model, delta.config
    dim = model.get_input_embeddings().weight.shape[1]
    whole = config.granularity == "tensor"
    length = prompt_length(delta.budget, dim, whole)
    if length == 0:
        raise UserError(
            f"the apet budget {delta.budget} is below one whole soft token ({dim} entries)"
        )
    limit = getattr(model.config, "max_position_embeddings", None)
    if limit is not None and length >= limit:
        raise UserError(f"apet concat needs {length} soft tokens; this model holds {limit}")
    table = model.get_input_embeddings().weight
    meta = table.device.type == "meta"
    prompt = initial_prompt(model, length, None if meta else generator(config.seed, "concat"))
    # With tensor granularity the whole prompt (floor(K / d) tokens) is the one tensor taken.
    idx = place({"prompt": prompt}, min(delta.budget, prompt.numel()), config)["prompt"]
    soft = SoftPrompt(prompt, idx)
    model.add_module("apet_prompt", soft)
    # after [CLS] on encoders, whose head reads it; in front on T5's encoder and on decoders
    at = 1 if delta.structure.kind == "encoder" else 0
    _, remove_hooks = attach_soft_tokens(model, delta.structure, soft, length, at)
    delta.sites["apet_prompt.prompt"] = soft
    span = output_span(delta.structure, length, at)
    delta.layers.append(SoftTokens("apet --op concat's soft tokens", span))

    def remove() -> None:
        remove_hooks()
        del model.apet_prompt

    delta.on_detach(remove)


def bias_targets(model: nn.Module, structure: Structure, targets: str | None) -> list[str]:
    """The modules whose biases bitfit trains by default, narrowed to those ``targets`` picks."""
    names = selected(model, structure, BitFitConfig())
    if targets is None:
        return names
    chosen = set(picked(model, structure, targets))
    kept = [n for n in names if n in chosen]
    if not kept:
        raise UserError(
            f"--targets {targets!r} picks none of the biases bitfit trains in this "
            f"{structure.family} model; roles: {', '.join(CONVENTION_ROLES)}"
        )
    return kept


def _attach_bias(delta: ApetDelta, targets: str | None) -> None:
    model, config = delta.model, delta.config
    biases: dict[str, torch.Tensor] = {}  # tensor name -> the bias, or a stand-in of its shape
    owners: dict[str, nn.Module] = {}
    for name in bias_targets(model, delta.structure, targets):
        module = model.get_submodule(name)
        own = getattr(module, "bias", None)
        if isinstance(own, nn.Parameter) and any(own is b for b in biases.values()):
            continue  # a tied bias (BERT's MLM decoder) is placed and counted once
        if not isinstance(own, nn.Parameter):  # none (T5, most LM heads): bitfit adds zeros
            own = new_tensor(module.weight, bias_width(module, "apet --op bias"))
        biases[f"{name}.bias"] = own
        owners[f"{name}.bias"] = module
    total = sum(b.numel() for b in biases.values())
    if delta.budget > total:
        which = "--targets picks" if targets else "bitfit trains on this model"
        raise UserError(
            f"the apet budget {delta.budget:,} exceeds the {total:,} entries of the biases "
            f"{which}; lower it" + (" or widen --targets" if targets else " (--match bitfit: all)")
        )
    for tensor, idx in place(biases, delta.budget, config).items():
        module = owners[tensor]
        site = SparseBias(biases[tensor].numel(), idx, biases[tensor])
        module.add_module(BIAS_SITE, site)
        handle = module.register_forward_hook(site.add)
        delta.sites[tensor] = site
        if "bias" in module._parameters:  # its own, or declared None: merge writes into it
            delta.layers.append(BiasMerge(module, site))
        else:
            kind = type(module).__name__
            what = f"apet's bias on {tensor.removesuffix('.bias')} (a {kind}, which has none)"
            delta.layers.append(Unmergeable(what))

        def remove(module: nn.Module = module, handle: RemovableHandle = handle) -> None:
            handle.remove()
            delattr(module, BIAS_SITE)

        delta.on_detach(remove)


def attach(model: nn.Module, structure: Structure, config: ApetConfig) -> ApetDelta:
    config.validate()
    if config.budget is None:  # a programming error: every caller sizes first
        raise ValueError("apet attaches a plain K: size its config with budget.resolve_config")
    delta = ApetDelta(model, structure, config, config.budget)
    freeze(model, delta)
    if config.op == "add":
        _attach_add(delta, config.targets or ADD_TARGETS)
    elif config.op == "plug":
        _attach_plug(delta, config.targets or PLUG_TARGETS)
    elif config.op == "bias":
        _attach_bias(delta, config.targets)
    else:
        _attach_concat(delta)
    return delta


CONFIG = ApetConfig

"""BitFit (Ben Zaken et al. 2022): train the biases only.

The study's set: the biases of the self-attention projections (q, k, v, output), of the
feed-forward projections, of every layer norm and of the LM head's output projection. Where a
model has no such bias (T5's linear layers and RMS norms, most LM heads) a zero bias is added
and trained, so the model starts unchanged.
"""

from __future__ import annotations

import torch
from torch import nn

from petscale.errors import UserError
from petscale.methods.base import (
    Delta,
    InPlace,
    Unmergeable,
    freeze,
    new_tensor,
)
from petscale.methods.configs import BIAS_SETS as BIAS_SETS
from petscale.methods.configs import BitFitConfig
from petscale.zoo.structure import Structure

#: The roles of the study's set (APET's op ``bias`` takes the same biases).
CONVENTION_ROLES = ("q", "k", "v", "attn_out", "ffn_in", "ffn_out", "layer_norm", "lm_head")


class BitFitDelta(Delta):
    def __init__(self, model: nn.Module, structure: Structure, config: BitFitConfig):
        super().__init__(model, structure, "bitfit", config)
        self.biases: dict[str, nn.Parameter] = {}  # module name -> its (own or added) bias

    def parameters(self) -> dict[str, nn.Parameter]:
        return {f"{name}.bias": bias for name, bias in self.biases.items()}


def attach(model: nn.Module, structure: Structure, config: BitFitConfig) -> BitFitDelta:
    config.validate()
    delta = BitFitDelta(model, structure, config)
    freeze(model, delta)
    for name in selected(model, structure, config):
        module = model.get_submodule(name)
        own = getattr(module, "bias", None)
        if isinstance(own, nn.Parameter):
            if any(own is b for b in delta.biases.values()):
                continue  # a tied bias (BERT's MLM decoder) is trained and counted once
            _train_in_place(delta, own)
            delta.biases[name] = own
        else:
            delta.biases[name] = _add_zero_bias(delta, name, module)
    return delta


def selected(model: nn.Module, structure: Structure, config: BitFitConfig) -> list[str]:
    """Module names whose bias is trained, in model order (APET's op ``bias`` reads them)."""
    head = tuple(structure.modules("head"))
    names = structure.modules(*CONVENTION_ROLES)
    if config.biases == "all":
        names += [
            n
            for n, m in model.named_modules()
            if isinstance(getattr(m, "bias", None), nn.Parameter) and n not in names
        ]
    names = [n for n in names if not any(n == h or n.startswith(h + ".") for h in head)]
    if config.layers is not None:
        names = _top_blocks(structure, names, config.layers)
    order = {n: i for i, (n, _) in enumerate(model.named_modules())}
    return sorted(names, key=order.__getitem__)


def _top_blocks(structure: Structure, names: list[str], layers: int) -> list[str]:
    """Keep the modules in the top ``layers`` blocks of each stack (nothing outside blocks)."""
    blocks = structure.blocks()
    most = max(blocks.values(), default=0)
    if layers > most:
        raise UserError(f"--layers {layers} is more than this model's {most} blocks per stack")
    kept = []
    for name in names:
        found = structure.block_of(name)
        if found and found[1] >= blocks[found[0]] - layers:
            kept.append(name)
    return kept


def _train_in_place(delta: Delta, bias: nn.Parameter) -> None:
    """Train a bias the model has; detach() gives back its original values."""
    original = bias.detach().clone()

    def restore() -> None:
        with torch.no_grad():
            bias.copy_(original)

    bias.requires_grad_(True)
    delta.on_detach(restore)  # freeze()'s undo, registered earlier, runs later: flags too
    delta.layers.append(InPlace())


def bias_width(module: nn.Module, method: str) -> int:
    """Entries of a module's bias: its own, else the one bitfit adds (a linear layer's outputs,
    a norm's scale); ``method`` names the caller in the error for any other module."""
    own = getattr(module, "bias", None)
    if isinstance(own, torch.Tensor):
        return own.numel()
    if isinstance(module, nn.Linear):
        return module.out_features
    if isinstance(getattr(module, "weight", None), torch.Tensor) and module.weight.dim() == 1:
        return module.weight.shape[0]  # a norm's scale
    raise UserError(f"{method} cannot add a bias to {type(module).__name__}")


def _add_zero_bias(delta: Delta, name: str, module: nn.Module) -> nn.Parameter:
    """A trainable zero bias for a module without one (T5's linears and RMS norms). A linear
    layer's own forward adds it (merged from the start); a norm has no bias of its own, so a
    hook adds it, which no base weight can hold."""
    bias = nn.Parameter(new_tensor(module.weight, bias_width(module, "bitfit"), zeros=True))
    if "bias" in module._parameters:  # declared as None: the module's own forward adds it
        module.bias = bias
        delta.on_detach(lambda: module.register_parameter("bias", None))
        delta.layers.append(InPlace())
        return bias
    module.register_parameter("bias", bias)
    kind = type(module).__name__
    delta.layers.append(Unmergeable(f"bitfit's bias on {name} (a {kind}, which has none)"))
    handle = module.register_forward_hook(lambda _m, _i, out: out + bias)

    def remove() -> None:
        handle.remove()
        del module.bias

    delta.on_detach(remove)
    return bias


CONFIG = BitFitConfig

"""Forward + backward time of one sparse-delta linear layer, by formulation and trainable share.

Formulations (same layer and input; scattered positions unless said; the values' gradient is
checked to agree between weight, entry and sampled):
  weight   petscale's for scattered positions above the CPU rule's entry share (everywhere on
           CUDA): W_eff = W + scatter(v), one matmul; the dense (out x in) weight gradient
           formed in backward, the K entries gathered from it
  entry    petscale's for scattered positions up to the CPU rule's entry share: the same
           forward; backward computes the K entries alone as dot products of gathered rows of
           grad_out.T and x.T
  sampled  the same forward; the values' gradient is the weight gradient sampled at the K
           positions only (torch.sparse.sampled_addmm), never the dense one
  slab     petscale's for adjacent positions (one run of K entries): out[..., rows] += x @ D.T
           with D the few rows the run covers
  gather   base(x), then out[..., r] += x[..., c] * v (index_select + index_add_); O(tokens x K)
  coo      base(x) + x @ S.T with S a torch.sparse COO matrix of (rows, cols, v)
  frozen   the frozen layer alone (input gradient only): the floor every method pays
Times are one forward + backward over 2048 tokens, in ms.
The times are the minimum over repeats (the CPU is shared; the minimum is the least noisy).

Run: .venv/bin/python benchmarks/apet_forward.py [--repeats 5] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from collections.abc import Callable

import torch
from torch import nn

from petscale.methods.sparse import SparseLinear, add_into

SHAPES = ((384, 384), (384, 1536), (768, 3072))
SHARES = (0.003, 0.01, 0.05, 0.1, 0.25)
TOKENS = 2048  # 32 sequences of 64 tokens
SLOW, SLOW_ABOVE = ("gather", "coo"), 0.05


class SampledLinear(torch.autograd.Function):
    """``x @ W_eff.T + b``; the values' gradient is dW at the K positions (SDDMM)."""

    @staticmethod
    def forward(ctx, x, weight, bias, values, indices):  # noqa: ANN001, ANN205
        w_eff = add_into(weight, indices, values)
        ctx.save_for_backward(x, w_eff, indices)
        return torch.nn.functional.linear(x, w_eff, bias)

    @staticmethod
    def backward(ctx, grad):  # noqa: ANN001, ANN205
        x, w_eff, indices = ctx.saved_tensors
        grad2, x2 = grad.reshape(-1, grad.shape[-1]), x.reshape(-1, x.shape[-1])
        width = w_eff.shape[1]
        crow = torch.zeros(w_eff.shape[0] + 1, dtype=torch.long)
        crow[1:] = torch.bincount((indices // width).long(), minlength=w_eff.shape[0]).cumsum(0)
        cols = (indices % width).long()
        pattern = torch.sparse_csr_tensor(crow, cols, torch.zeros(cols.numel()), w_eff.shape)
        grad_values = torch.sparse.sampled_addmm(pattern, grad2.T, x2, beta=0.0).values()
        return grad @ w_eff, None, None, grad_values, None


def sampled_forward(layer: SparseLinear, x: torch.Tensor) -> torch.Tensor:
    base = layer.base
    return SampledLinear.apply(x, base.weight, base.bias, layer.values, layer.indices)


def gather_forward(layer: SparseLinear, x: torch.Tensor) -> torch.Tensor:
    rows, cols = layer.indices // layer.in_features, layer.indices % layer.in_features
    out = layer.base(x)
    return out.index_add_(-1, rows, x.index_select(-1, cols) * layer.values)


def coo_forward(layer: SparseLinear, x: torch.Tensor) -> torch.Tensor:
    rows, cols = layer.indices // layer.in_features, layer.indices % layer.in_features
    shape = (layer.out_features, layer.in_features)
    matrix = torch.sparse_coo_tensor(torch.stack([rows, cols]).long(), layer.values, shape)
    extra = torch.sparse.mm(matrix, x.reshape(-1, x.shape[-1]).T).T
    return layer.base(x) + extra.reshape(*x.shape[:-1], -1)


def fastest(step: Callable[[], None], repeats: int) -> float:
    step()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return min(times) * 1000


def measure(d_in: int, d_out: int, share: float, repeats: int) -> dict[str, float]:
    torch.manual_seed(0)
    base = nn.Linear(d_in, d_out).requires_grad_(False)
    k = max(1, int(share * base.weight.numel()))
    indices = torch.randperm(base.weight.numel())[:k].sort().values.int()
    x = torch.randn(TOKENS // 64, 64, d_in, requires_grad=True)
    run = torch.arange(k, dtype=torch.int32) + (base.weight.numel() - k) // 2
    weight, sampled = SparseLinear(base, indices, mode="weight"), SparseLinear(base, indices)
    entry = SparseLinear(base, indices, mode="entry")
    forwards = {
        "weight": weight,
        "entry": entry,
        "sampled": lambda inp: sampled_forward(sampled, inp),
        "slab": SparseLinear(base, run),
        "gather": lambda inp, lay=SparseLinear(base, indices): gather_forward(lay, inp),
        "coo": lambda inp, lay=SparseLinear(base, indices): coo_forward(lay, inp),
        "frozen": base,
    }
    result, grads = {}, {}
    for name, forward in forwards.items():
        if name in SLOW and share > SLOW_ABOVE:
            result[name] = float("nan")  # seconds per step there; not worth the wait
            continue

        def step(forward: Callable = forward) -> None:
            forward(x).pow(2).mean().backward()

        result[name] = fastest(step, repeats)
    for name, layer in (("weight", weight), ("entry", entry), ("sampled", sampled)):
        layer.values.grad = None
        forwards[name](x).pow(2).mean().backward()
        grads[name] = layer.values.grad
    for name in ("entry", "sampled"):
        torch.testing.assert_close(grads[name], grads["weight"], rtol=1e-3, atol=1e-6)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    torch.set_num_threads(2)
    warnings.filterwarnings("ignore", message=".*[Ss]parse")
    rows = []
    names = (
        "weight",
        "entry",
        "sampled",
        "slab",
        "gather",
        "coo",
        "frozen",
    )  # the order of measure()
    print(f"{'layer':>11} {'share':>6} " + " ".join(f"{n:>8}" for n in names) + "  (ms)")
    for d_in, d_out in SHAPES:
        for share in SHARES:
            ms = measure(d_in, d_out, share, args.repeats)
            rows.append({"in": d_in, "out": d_out, "tokens": TOKENS, "share": share, **ms})
            cells = " ".join(f"{v:>8.1f}" for v in ms.values())
            print(f"{d_in:>5}x{d_out:<5} {share:>6.3f} {cells}", flush=True)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(rows, handle, indent=2)


if __name__ == "__main__":
    main()

"""Discrete APET's values' gradient alone: the dense weight-gradient GEMM + gather vs ``entry``.

For one layer's weight (out x in) and K scattered positions (a share of its entries), times the
two ways ``SparseLinear`` can compute the K entries of ``grad_out.T @ x`` over 1,024 tokens:
``weight`` (the dense GEMM, then ``index_select``) and ``entry`` (K gathered dot products in
chunks, ``methods.sparse.entry_grad``). The rule ``RULES["cpu"].entry`` in
``src/petscale/methods/sparse.py`` (entry below a share of 1/32) rests on this crossover.
CPU time of the process, minimum over repeats, one thread by default.

Run: PYTHONPATH=src .venv/bin/python benchmarks/values_grad.py [--threads 1] [--repeats 20]
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from functools import partial

import torch

from petscale.methods.sparse import RULES, entry_grad

SHAPES = ((384, 384), (1536, 384), (3072, 768))
SHARES = (0.007, 0.02, 1 / 32, 0.05)
TOKENS = 1024


def dense_then_gather(grad: torch.Tensor, x: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
    return (grad.T @ x).flatten().index_select(0, indices)


def cpu_ms(function: Callable[[], torch.Tensor], repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.process_time()
        function()
        best = min(best, time.process_time() - start)
    return round(1000 * best, 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    generator = torch.Generator().manual_seed(0)
    chunk = RULES["cpu"].chunk
    rows = []
    for out_features, in_features in SHAPES:
        grad = torch.randn(TOKENS, out_features, generator=generator)
        x = torch.randn(TOKENS, in_features, generator=generator)
        numel = out_features * in_features
        for share in SHARES:
            k = int(share * numel)
            indices = torch.randperm(numel, generator=generator)[:k].sort().values.int()
            shape = torch.Size((out_features, in_features))

            dense = partial(dense_then_gather, grad, x, indices)
            entry = partial(entry_grad, grad, x, indices, shape, False, chunk)
            torch.testing.assert_close(dense(), entry(), rtol=1e-4, atol=1e-3)
            rows.append(
                {
                    "shape": [out_features, in_features],
                    "share": share,
                    "k": k,
                    "weight_ms": cpu_ms(dense, args.repeats),
                    "entry_ms": cpu_ms(entry, args.repeats),
                }
            )
            print(json.dumps(rows[-1]))


if __name__ == "__main__":
    main()

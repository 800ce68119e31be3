"""Where APET's K trainable entries go: shares per tensor, then positions inside each tensor.

Every draw uses a CPU ``torch.Generator`` seeded from (seed, key) through SHA-256, never
Python's ``hash()``, so the same model, targets, budget and seed give the same entries on every
run and machine.

- Shares (element granularity): K is split among the target tensors in proportion to their
  sizes, by largest remainder in exact integer arithmetic (ties broken by a seeded random
  order), so the shares sum to exactly K; a share never exceeds its tensor (when K <= the total,
  floor(K n / N) < n whenever there is a remainder to round up).
- adjacent: each share is one contiguous run of the flattened tensor (stored layout, row-major),
  starting at a seeded uniform offset in [0, n - share].
- discrete: each share is a uniform random subset of the tensor's entries, without replacement.
- tensor granularity: tensors in a seeded random order, each taken whole when it fits in what
  is left of K and skipped otherwise; the count reached may be below K, never above.
"""

from __future__ import annotations

import hashlib

import torch

from petscale.methods.configs import GRANULARITIES as GRANULARITIES
from petscale.methods.configs import PATTERNS as PATTERNS


def stable_seed(seed: int, key: str) -> int:
    digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1  # a non-negative int64


def generator(seed: int, key: str) -> torch.Generator:
    return torch.Generator().manual_seed(stable_seed(seed, key))


def element_shares(sizes: list[int], budget: int, seed: int) -> list[int]:
    """K split in proportion to ``sizes`` (largest remainder): sums to exactly ``budget``."""
    total = sum(sizes)
    shares = [budget * n // total for n in sizes]
    remainders = [budget * n % total for n in sizes]
    tie = torch.randperm(len(sizes), generator=generator(seed, "shares")).tolist()
    order = sorted(range(len(sizes)), key=lambda i: (-remainders[i], tie[i]))
    for i in order[: budget - sum(shares)]:
        shares[i] += 1
    return shares


def tensor_shares(sizes: list[int], budget: int, seed: int) -> list[int]:
    """Whole tensors in a seeded order while they fit: each share is 0 or the tensor's size."""
    shares = [0] * len(sizes)
    left = budget
    for i in torch.randperm(len(sizes), generator=generator(seed, "tensors")).tolist():
        if sizes[i] <= left:
            shares[i] = sizes[i]
            left -= sizes[i]
    return shares


def draw(numel: int, share: int, pattern: str, gen: torch.Generator) -> torch.Tensor:
    """``share`` sorted flat positions in a tensor of ``numel`` entries (int64)."""
    if share in (0, numel):
        return torch.arange(share)
    if pattern == "adjacent":
        start = int(torch.randint(numel - share + 1, (1,), generator=gen))
        return torch.arange(start, start + share)
    if 4 * share >= numel:  # dense enough that a full permutation is cheap
        return torch.randperm(numel, generator=gen)[:share].sort().values
    # Sparse: i.i.d. draws, deduplicated, until enough. Given its size the set of distinct
    # draws is a uniform subset, and a uniform subset of it is uniform too. Memory O(share).
    picked = torch.empty(0, dtype=torch.long)
    while picked.numel() < share:
        more = torch.randint(numel, (2 * (share - picked.numel()) + 16,), generator=gen)
        picked = torch.cat([picked, more]).unique()
    keep = torch.randperm(picked.numel(), generator=gen)[:share]
    return picked[keep].sort().values

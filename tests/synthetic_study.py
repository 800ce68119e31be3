"""Synthetic studies for the findings' tests: a known truth, plus seed noise.

Every structure's dev score rises from the floor to near full fine-tuning along a logistic
curve in log10(budget). What a test plants: thresholds that fall with model size
(``threshold_fall`` decades per decade, from ``middle``: the log10 budget half-way up the
curve on the smallest model), a plateau gap to full fine-tuning that shrinks with
model size (``gap_shrink``: the share of the gap lost per decade), and ADJACENT reaching its
best sooner than DISCRETE (``adjacent_lead`` steps), APET's four shapes' thresholds
``shape_shift`` decades apart. With every knob at 0 nothing depends on model size, pattern or
shape: only noise (``sd`` per trial) remains.
"""

from __future__ import annotations

import math

import numpy as np

FULL, MAJORITY, UNTUNED = 0.85, 0.50, 0.45
BUDGETS = [10, 46, 215, 1000, 4642, 21544, 100000]
#: APET in the four PET structures, each with its own plateau gap (score units)
SHAPES = {"lora": 0.01, "adapter": 0.0, "prompt": 0.06, "bitfit": 0.03}
OPS = {"lora": ("add", "q,v"), "adapter": ("plug", None), "prompt": ("concat", None)}
OPS["bitfit"] = ("add", "attn_out")


def records(
    seed: int = 0,
    sizes: tuple[float, ...] = (2e7, 5e7, 1.2e8),
    tasks: tuple[str, ...] = ("t1", "t2"),
    seeds: tuple[int, ...] = (0, 1, 2),
    sd: float = 0.03,
    threshold_fall: float = 0.0,
    gap_shrink: float = 0.0,
    adjacent_lead: int = 0,
    shape_shift: float = 0.0,
    middle: float = 2.5,
    examples: int = 500,
) -> list[dict]:
    rng = np.random.default_rng(seed)
    rows: list[dict] = []
    for size in sizes:
        decades = math.log10(size / sizes[0])
        model = f"m{size:.3g}"
        for task in tasks:
            common = {
                "model": model,
                "task": task,
                "task_type": "sentiment",
                "total_params": size,
                "random_guess": 0.5,
                "metric": "accuracy",
                "dev_examples": examples,
                "dev_majority": MAJORITY,
                "head": "frozen",
            }
            for s in seeds:

                def noisy(value: float) -> float:
                    return float(np.clip(value + rng.normal(0, sd), 0, 1))

                rows.append({**common, "method": "full", "seed": s, "dev_score": noisy(FULL)})
                rows.append({**common, "method": "untuned", "seed": s, "dev_score": noisy(UNTUNED)})
                for rank, (shape, plateau) in enumerate(SHAPES.items()):
                    op, targets = OPS[shape]
                    gap = plateau * max(0.0, 1 - gap_shrink * decades)
                    for pattern in ("adjacent", "discrete"):
                        reach = 20 if pattern == "adjacent" else 20 + adjacent_lead
                        centre = middle - threshold_fall * decades + shape_shift * rank
                        for budget in BUDGETS:
                            rise = 1 / (1 + math.exp(-3 * (math.log10(budget) - centre)))
                            score = noisy(MAJORITY - 0.05 + (FULL - gap - MAJORITY + 0.05) * rise)
                            curve = [(t, score * min(1.0, t / reach)) for t in range(10, 101, 10)]
                            rows.append(
                                {
                                    **common,
                                    "method": "apet",
                                    "pattern": pattern,
                                    "options": {"op": op, "targets": targets, "pattern": pattern},
                                    "seed": s,
                                    "trainable_params": budget,
                                    "dev_score": score,
                                    "curve": curve[:-1] + [(100, score)],
                                }
                            )
    return rows

"""Tokens a trial's training batches hold: length-grouped (petscale) against random batches.

The whole_trial.py workload's data: MiniLM-L6's tokenizer, Rotten Tomatoes' train split at max
length 128, 300 batches of 32, seed 0. Counts the tokens of each batch padded to its longest
row (``input_ids`` positions), for the batches ``petscale.train.batches`` draws and for random
batches (a seeded shuffle cut in order, as a random sampler with DataCollatorWithPadding
gives), and the real tokens of the random ones. No model runs.

Run: PETSCALE_CACHE=/tmp/pcache PYTHONPATH=src .venv/bin/python benchmarks/padded_tokens.py
"""

from __future__ import annotations

import argparse
import itertools
import json

import torch
from transformers import AutoTokenizer

from petscale.answers import answerer_for
from petscale.features import encode_splits
from petscale.tasks import get_task
from petscale.train import batches, feature_length
from petscale.zoo import registry


def padded(lengths: list[int], batch: list[int]) -> int:
    return len(batch) * max(lengths[i] for i in batch)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=128)
    args = parser.parse_args()
    task = get_task("rotten_tomatoes")
    tokenizer = AutoTokenizer.from_pretrained(registry.weights_folder("minilm-l6"))
    answerer = answerer_for("classify", task.spec, tokenizer, args.max_length)
    features = encode_splits(answerer, tokenizer, task.splits())["train"]
    size = args.batch_size
    grouped_by = [feature_length(f) for f in features]  # what a trial groups by
    grouped = list(
        itertools.islice(batches(grouped_by, size, torch.Generator().manual_seed(0)), args.steps)
    )
    lengths = [len(f["input_ids"]) for f in features]  # tokens, counted once per position
    order = torch.randperm(len(lengths), generator=torch.Generator().manual_seed(0)).tolist()
    epochs = order * (1 + args.steps * size // len(order))
    shuffled = [epochs[i * size : (i + 1) * size] for i in range(args.steps)]
    out = {
        "steps": args.steps,
        "batch_size": size,
        "grouped_padded": sum(padded(lengths, b) for b in grouped),
        "random_padded": sum(padded(lengths, b) for b in shuffled),
        "random_real": sum(lengths[i] for b in shuffled for i in b),
    }
    out["grouped_per_step"] = round(out["grouped_padded"] / args.steps, 1)
    out["random_per_step"] = round(out["random_padded"] / args.steps, 1)
    print(json.dumps(out))


if __name__ == "__main__":
    main()

"""Evaluation batch size on a CPU: petscale's length-sorted ``evaluate`` at several batch sizes.

MiniLM-L6 with LoRA r 8 on q, v (as in whole_trial.py, untrained), the first ``--examples`` of
Rotten Tomatoes' dev split, each batch size in turn, round by round (so load hits all alike);
wall and CPU time (user + sys) of each pass, and the accuracy (equal at every size).

Run: OMP_NUM_THREADS=1 PETSCALE_CACHE=/tmp/pcache PYTHONPATH=src \\
     .venv/bin/python benchmarks/eval_batch.py [--sizes 8,32,128,512] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from petscale import trial
from petscale.answers import answerer_for
from petscale.features import encode_splits
from petscale.tasks import get_task
from petscale.train import evaluate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="8,32,128,512")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--examples", type=int, default=400)
    args = parser.parse_args()
    config = {"model": "minilm-l6", "task": "rotten_tomatoes", "options": {"rank": 8}}
    cfg = trial.normalize(config | {"method": "lora", "pooling": "cls"})
    task = get_task(cfg["task"])
    splits = task.splits()
    built = trial.build_model(cfg, task.spec, trial.method_options(cfg))
    tokenizer = built.loaded.tokenizer
    answerer = answerer_for(built.loaded.answer, task.spec, tokenizer, cfg["max_length"])
    dev = encode_splits(answerer, tokenizer, splits)["dev"][: args.examples]
    refs = [answerer.reference(ex) for ex in splits["dev"][: args.examples]]
    sizes = [int(s) for s in args.sizes.split(",")]
    passes: dict[int, list[dict]] = {size: [] for size in sizes}
    for _ in range(args.rounds):
        for size in sizes:
            wall, cpu = time.perf_counter(), time.process_time()
            score = evaluate(
                built.loaded.model, answerer, dev, refs, "accuracy", size, torch.device("cpu")
            )
            passes[size].append(
                {
                    "wall_s": round(time.perf_counter() - wall, 2),
                    "cpu_s": round(time.process_time() - cpu, 2),
                    "accuracy": score,
                }
            )
    print(json.dumps({"threads": torch.get_num_threads(), "passes": passes}))


if __name__ == "__main__":
    main()

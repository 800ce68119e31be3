"""A whole trial, ``petscale tune`` against Hugging Face Trainer + PEFT doing the same work.

The same work: MiniLM-L6, Rotten Tomatoes, LoRA r=8 alpha 16 on query and value with a
trainable [CLS] head, 300 steps of batch 32, max length 128, lr 5e-4 with 6% warm-up and
linear decay, dev evaluated every 100 steps, then test. Each side runs as a whole process
(loading, tokenization and evaluation included), alternated round by round so that machine
load hits both alike; wall time is measured around the process. petscale's tokenized splits
are cached on disk, so every round after the first reads them (``--cold`` clears the cache
first each round: tokenization counted every time, as the HF script always pays it).

Run: .venv/bin/python benchmarks/whole_trial.py [--rounds 1] [--steps 300] [--cold]
Writes benchmarks/results/whole_trial.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent
RESULTS = HERE / "results" / "whole_trial.json"


def run(command: list[str], env: dict[str, str]) -> tuple[float, dict]:
    start = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{command[:3]} failed:\n{done.stderr[-3000:]}")
    return seconds, json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--eval-every", type=int, default=100)
    parser.add_argument("--cold", action="store_true", help="clear petscale's feature cache")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}  # both: all cores
    env.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    python = sys.executable
    common = ["--steps", str(args.steps), "--eval-every", str(args.eval_every)]
    petscale = [str(Path(python).parent / "petscale"), "tune", "--model", "minilm-l6"]
    petscale += ["--task", "rotten_tomatoes", "--method", "lora", "--rank", "8", "--lr", "5e-4"]
    petscale += ["--batch-size", "32", "--max-length", "128", "--pooling", "cls", "--json"]
    petscale += common
    hf = [python, str(HERE / "hf_trainer_lora.py"), *common]
    features = Path(env.get("PETSCALE_CACHE", Path.home() / ".cache" / "petscale")) / "features"
    rows = []
    for round_ in range(args.rounds):
        if args.cold:
            shutil.rmtree(features, ignore_errors=True)
        ours_s, ours = run(petscale, env)
        theirs_s, theirs = run(hf, env)
        rows.append(
            {
                "round": round_,
                "petscale_s": round(ours_s, 1),
                "hf_s": round(theirs_s, 1),
                "ratio_hf_over_petscale": round(theirs_s / ours_s, 2),
                "petscale_dev": ours["dev_score"],
                "hf_dev": theirs["dev_score"],
                "petscale_test": ours["test_score"],
                "hf_test": theirs["test_score"],
                "petscale_step_s": ours["step_seconds"],
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    load = os.getloadavg()
    report = {"command": " ".join(sys.argv), "cold": args.cold, "load_after": load, "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()

"""A whole trial, ``petscale tune`` against Hugging Face Trainer + PEFT doing the same work.

The same work: MiniLM-L6, Rotten Tomatoes, LoRA r=8 alpha 16 on query and value with a
trainable [CLS] head, 300 steps of batch 32, max length 128, lr 5e-4 with 6% warm-up and
linear decay, dev evaluated every 100 steps, then test. Each side runs as a whole process
(loading, tokenization and evaluation included), alternated round by round so that machine
load hits both alike; wall time is measured around the process. petscale's tokenized splits
are cached on disk, so every round after the first reads them (``--cold`` clears the cache
first each round: tokenization counted every time, as the HF script always pays it).

``--breakdown`` runs each side with its phase timers (petscale through ``trial_breakdown.py``,
i.e. ``run_trial`` in a plain process instead of the CLI; HF with ``--breakdown``): the same
work, timed by part. Besides wall time, each process's CPU time (user + sys) is recorded:
on a shared machine it follows the work done far more closely than wall time does.

Run: .venv/bin/python benchmarks/whole_trial.py [--rounds 1] [--steps 300] [--cold] [--breakdown]
Writes benchmarks/results/whole_trial.json.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent
RESULTS = HERE / "results" / "whole_trial.json"


def cpu_seconds() -> float:
    """User + system CPU time of this process's finished children so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run(command: list[str], env: dict[str, str]) -> tuple[float, float, dict]:
    """(wall s, CPU s, the JSON the command printed last) of one whole process."""
    start, cpu = time.perf_counter(), cpu_seconds()
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{command[:3]} failed:\n{done.stderr[-3000:]}")
    return seconds, cpu_seconds() - cpu, json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--eval-every", type=int, default=100)
    parser.add_argument("--cold", action="store_true", help="clear petscale's feature cache")
    parser.add_argument("--breakdown", action="store_true", help="time each side's phases")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}  # both: all cores
    env.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    python = sys.executable
    common = ["--steps", str(args.steps), "--eval-every", str(args.eval_every)]
    if args.breakdown:
        petscale = [python, str(HERE / "trial_breakdown.py"), *common]
    else:
        petscale = [str(Path(python).parent / "petscale"), "tune", "--model", "minilm-l6"]
        petscale += ["--task", "rotten_tomatoes", "--method", "lora", "--rank", "8"]
        petscale += ["--lr", "5e-4", "--batch-size", "32", "--max-length", "128"]
        petscale += ["--pooling", "cls", "--json", *common]
    hf = [python, str(HERE / "hf_trainer_lora.py"), *common]
    hf += ["--breakdown"] if args.breakdown else []
    features = Path(env.get("PETSCALE_CACHE", Path.home() / ".cache" / "petscale")) / "features"
    rows = []
    for round_ in range(args.rounds):
        if args.cold:
            shutil.rmtree(features, ignore_errors=True)
        row: dict = {"round": round_}
        # Alternate which side goes first, so a load that drifts within a round hits both.
        sides = [("petscale", petscale), ("hf", hf)][:: -1 if round_ % 2 else 1]
        for side, command in sides:
            row[f"{side}_load_before"] = round(os.getloadavg()[0], 1)
            wall, cpu, row[side] = run(command, env)
            row[f"{side}_s"], row[f"{side}_cpu_s"] = round(wall, 1), round(cpu, 1)
        row["ratio_hf_over_petscale"] = round(row["hf_s"] / row["petscale_s"], 2)
        row["cpu_ratio_hf_over_petscale"] = round(row["hf_cpu_s"] / row["petscale_cpu_s"], 2)
        rows.append(row)
        print(json.dumps(row), flush=True)
    report = {
        "command": " ".join(sys.argv),
        "cold": args.cold,
        "load_after": os.getloadavg(),
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()

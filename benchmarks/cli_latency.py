"""How long the command line takes to answer: ``petscale --help``, the listings and two
commands' ``--help``, against ``python -c "import torch"`` (and a bare interpreter), in one run.

Every command is a fresh process, run round by round (so a busy machine slows all alike); the
median wall time of each, its ratio to ``import torch``'s, and whether it imported torch
(one more run under ``PYTHONPROFILEIMPORTTIME``). Writes ``results/cli_latency.json``.

Run: .venv/bin/python benchmarks/cli_latency.py [--rounds 7] [--out PATH]
     [--src OTHER/src]   # another tree's petscale (e.g. an older commit), as python -m petscale.cli
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
COMMANDS = {
    "petscale --help": ["--help"],
    "petscale models": ["models"],
    "petscale tasks": ["tasks"],
    "petscale methods": ["methods"],
    "petscale tune --help": ["tune", "--help"],
    "petscale study run --help": ["study", "run", "--help"],
}
REFERENCES = {
    'python -c "import torch"': [sys.executable, "-c", "import torch"],
    'python -c "pass"': [sys.executable, "-c", "pass"],
}
TORCH = 'python -c "import torch"'


def command_lines(src: Path | None) -> dict[str, list[str]]:
    """Each measured command line: the console entry, or ``python -m petscale.cli`` on ``src``."""
    entry = Path(sys.executable).with_name("petscale")
    start = [sys.executable, "-m", "petscale.cli"] if src or not entry.is_file() else [str(entry)]
    return {name: start + args for name, args in COMMANDS.items()} | REFERENCES


def environment(src: Path | None) -> dict[str, str]:
    env = {**os.environ, "COLUMNS": "100"}
    if src is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(src), env.get("PYTHONPATH", "")]).rstrip(":")
    return env


def seconds(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    return time.perf_counter() - start


def imports_torch(argv: list[str], env: dict[str, str]) -> bool:
    """Whether the process imported torch (its import-time profile names it)."""
    done = subprocess.run(
        argv,
        env={**env, "PYTHONPROFILEIMPORTTIME": "1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        check=False,
    )
    return any(line.split("|")[-1].strip() == "torch" for line in done.stderr.splitlines())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--src", type=Path, help="run this tree's petscale (PYTHONPATH)")
    parser.add_argument("--out", type=Path, default=RESULTS / "cli_latency.json")
    args = parser.parse_args()
    lines = command_lines(args.src)
    env = environment(args.src)
    for argv in lines.values():  # warm the file cache: the first run reads every file from disk
        seconds(argv, env)
    runs: dict[str, list[float]] = {name: [] for name in lines}
    for _ in range(args.rounds):
        for name, argv in lines.items():
            runs[name].append(round(seconds(argv, env), 3))
    medians = {name: statistics.median(times) for name, times in runs.items()}
    rows = {
        name: {
            "median_s": round(medians[name], 3),
            "vs_import_torch": round(medians[name] / medians[TORCH], 2),
            "imports_torch": imports_torch(argv, env),
            "runs_s": runs[name],
        }
        for name, argv in lines.items()
    }
    figures = {
        "rounds": args.rounds,
        "src": str(args.src) if args.src else "installed",
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "commands": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(figures, indent=1) + "\n", encoding="utf-8")
    width = max(map(len, rows))
    print(f"{'command':{width}}  median s  x import torch  imports torch")
    for name, row in rows.items():
        torch = "yes" if row["imports_torch"] else "no"
        print(f"{name:{width}}  {row['median_s']:8.3f}  {row['vs_import_torch']:14.2f}  {torch}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

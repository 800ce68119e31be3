"""MiniLM-L6 training steps, discrete APET (entry / weight backward) vs LoRA, alternated.

One process holds an APET and a LoRA model (K = LoRA's count) and alternates their training
steps (forward + backward + AdamW on 16 x 64 tokens), so load on a shared machine hits all three
alike; APET switches its sites between the ``entry`` and ``weight`` formulations. Reports the
minimum wall and CPU time per variant and the ratios to LoRA.

Run from benchmarks/ (it imports apet_memory_speed):
    ../.venv/bin/python apet_step_ab.py [--threads 1] [--rounds 7]
"""

from __future__ import annotations

import argparse
import time

import torch

from apet_memory_speed import attach, build


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    setups = {}
    for method in ("apet", "lora"):
        model = build("minilm-l6").train()
        delta, params = attach(model, method)
        setups[method] = (model, delta, torch.optim.AdamW(params, lr=1e-4))
    gen = torch.Generator().manual_seed(0)
    inputs = {
        "input_ids": torch.randint(30522, (16, 64), generator=gen),
        "attention_mask": torch.ones(16, 64, dtype=torch.long),
        "labels": torch.randint(2, (16,), generator=gen),
    }
    variants = {"apet-entry": ("apet", "entry"), "apet-weight": ("apet", "weight")}
    variants["lora"] = ("lora", None)
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in variants}
    for round_ in range(args.rounds + 1):  # round 0 warms up
        for name, (method, mode) in variants.items():
            model, delta, optimizer = setups[method]
            for site in delta.sites.values() if mode else ():
                site.mode = mode
            wall, cpu = time.perf_counter(), time.process_time()
            model(**inputs).loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            if round_:
                times[name].append((time.perf_counter() - wall, time.process_time() - cpu))
    best = {n: (min(w for w, _ in t) * 1e3, min(c for _, c in t) * 1e3) for n, t in times.items()}
    lora_wall, lora_cpu = best["lora"]
    for name, (wall, cpu) in best.items():
        print(
            f"{name:<12} wall min {wall:.0f} ms  cpu min {cpu:.0f} ms  "
            f"wall/lora {wall / lora_wall:.2f}  cpu/lora {cpu / lora_cpu:.2f}"
        )


if __name__ == "__main__":
    main()

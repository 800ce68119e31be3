"""APET's training memory and step time against a dense 0/1-mask baseline and LoRA, at equal K.

For each model size (MiniLM-L6 and MPNet-base shapes, random weights from their configs) and
each variant, one fresh subprocess trains a few AdamW steps on a fixed random batch
(16 x 64 tokens by default) and reports:

- ``optimizer_bytes`` + ``grad_bytes`` + ``param_bytes``: summed tensor sizes of the Adam state,
  the gradients (measured right after backward) and the trainable tensors themselves;
- ``index_bytes``: APET's position buffers (not optimizer memory, reported apart);
- ``peak_rss_mb``: the subprocess's peak resident memory (model + activations + the above);
- ``step_ms``: the median wall time of one forward + backward + AdamW step.

Variants (K = LoRA's default count on the model: rank 8 on query and value):
  apet       element granularity, discrete, op add on q,k,v,attn_out,ffn_in,ffn_out
  apet-weight the same, forced to the ``weight`` formulation (the dense weight-gradient GEMM in
             backward: what discrete APET used before ``entry``)
  apet-adj   the same, adjacent runs
  dense-mask the same positions, trained the naive way: the target weights are trainable, a
             gradient hook multiplies their dense gradient by a 0/1 mask, AdamW keeps full state
  lora       rank 8 on query and value
The classification head is frozen everywhere so only the method's tensors are measured.

Run: .venv/bin/python benchmarks/apet_memory_speed.py [--steps 3] [--batch 16]
     [--models minilm-l6,mpnet-base]
Results: a table on stdout and benchmarks/results/apet_memory_speed_<device>.json.
``--device cuda`` also reports the peak CUDA memory (``peak_cuda_mb``).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
from torch import nn
from transformers import (
    BertConfig,
    BertForSequenceClassification,
    MPNetConfig,
    MPNetForSequenceClassification,
)

from petscale.budget import attach_method
from petscale.methods.base import Delta

VARIANTS = ("apet", "apet-weight", "apet-adj", "dense-mask", "lora")
RESULTS = Path(__file__).parent / "results" / "apet_memory_speed.json"  # _<device> added


def build(name: str) -> nn.Module:
    torch.manual_seed(0)
    if name == "minilm-l6":
        config = BertConfig(
            hidden_size=384, num_hidden_layers=6, num_attention_heads=12, intermediate_size=1536
        )
        return BertForSequenceClassification(config)
    if name == "mpnet-base":
        config = MPNetConfig(
            hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072
        )
        return MPNetForSequenceClassification(config)
    raise SystemExit(f"unknown model {name}")


def attach(model: nn.Module, variant: str) -> tuple[Delta, list[nn.Parameter]]:
    """The variant's delta and the tensors the optimizer trains."""
    if variant == "lora":
        delta = attach_method(model, "lora", {})
        return delta, list(delta.parameters().values())
    pattern = "adjacent" if variant == "apet-adj" else "discrete"
    delta = attach_method(model, "apet", {"match": "lora", "pattern": pattern})
    if variant == "apet-weight":
        for site in delta.sites.values():
            site.mode = "weight"
    if variant != "dense-mask":
        return delta, list(delta.parameters().values())
    # The naive baseline: same positions, but the whole target weights train behind a mask.
    masked = []
    for site in delta.sites.values():
        weight = site.base.weight
        mask = torch.zeros(weight.numel(), device=weight.device)
        mask[site.indices.long()] = 1.0
        mask = mask.view_as(weight)
        weight.requires_grad_(True)
        weight.register_hook(lambda grad, mask=mask: grad * mask)
        site.values.requires_grad_(False)
        site.mode = "weight"
        masked.append(weight)
    return delta, masked


def tensor_bytes(tensors: list[torch.Tensor]) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


def run_one(model_name: str, variant: str, steps: int, batch: int, device: str) -> dict:
    torch.set_num_threads(2)
    model = build(model_name).to(device).train()
    delta, params = attach(model, variant)
    generator = torch.Generator().manual_seed(0)
    inputs = {
        "input_ids": torch.randint(model.config.vocab_size, (batch, 64), generator=generator),
        "attention_mask": torch.ones(batch, 64, dtype=torch.long),
        "labels": torch.randint(2, (batch,), generator=generator),
    }
    inputs = {k: v.to(device) for k, v in inputs.items()}
    optimizer = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.0)
    times, grad_bytes = [], 0
    for step in range(steps + 1):  # step 0 warms up (allocator, Adam state)
        start = time.perf_counter()
        model(**inputs).loss.backward()
        grad_bytes = tensor_bytes([p.grad for p in params if p.grad is not None])
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if device == "cuda":
            torch.cuda.synchronize()
        if step:
            times.append(time.perf_counter() - start)
    state = [t for s in optimizer.state.values() for t in s.values() if torch.is_tensor(t)]
    indices = [] if variant == "lora" else list(delta.indices().values())
    k = sum(p.numel() for p in delta.parameters().values())
    return {
        "model": model_name,
        "variant": variant,
        "k": k,
        "param_bytes": tensor_bytes(params),
        "grad_bytes": grad_bytes,
        "optimizer_bytes": tensor_bytes(state),
        "index_bytes": tensor_bytes(indices),
        "device": device,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "peak_cuda_mb": torch.cuda.max_memory_allocated() / 2**20 if device == "cuda" else None,
        "step_ms": statistics.median(times) * 1000,
    }


def report(rows: list[dict]) -> dict:
    """Per model: the ratios the targets are about."""
    summary = {}
    for model in dict.fromkeys(r["model"] for r in rows):
        by = {r["variant"]: r for r in rows if r["model"] == model}
        apet = by["apet"]
        train_bytes = apet["param_bytes"] + apet["grad_bytes"] + apet["optimizer_bytes"]
        dense = by["dense-mask"]
        dense_bytes = dense["param_bytes"] + dense["grad_bytes"] + dense["optimizer_bytes"]
        summary[model] = {
            "k": apet["k"],
            "apet_train_bytes_over_16k": train_bytes / (16 * apet["k"]),
            "dense_mask_train_bytes_over_apet": dense_bytes / train_bytes,
            "dense_mask_peak_rss_over_apet": dense["peak_rss_mb"] / apet["peak_rss_mb"],
            "apet_step_over_lora": apet["step_ms"] / by["lora"]["step_ms"],
            "apet_weight_step_over_lora": by["apet-weight"]["step_ms"] / by["lora"]["step_ms"],
            "apet_adjacent_step_over_lora": by["apet-adj"]["step_ms"] / by["lora"]["step_ms"],
            "dense_mask_step_over_apet": dense["step_ms"] / apet["step_ms"],
        }
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3, help="timed steps per variant")
    parser.add_argument("--batch", type=int, default=16, help="sequences of 64 tokens per step")
    parser.add_argument("--models", default="minilm-l6,mpnet-base")
    parser.add_argument("--device", default="cpu", help="cpu (2 threads) or cuda")
    parser.add_argument("--one", nargs=2, metavar=("MODEL", "VARIANT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(*args.one, args.steps, args.batch, args.device)))
        return
    rows = []
    header = f"{'model':<11} {'variant':<11} {'K':>8} {'train MB':>9} {'index MB':>9}"
    print(f"{header} {'peak RSS MB':>11} {'step ms':>8}")
    for model in args.models.split(","):
        for variant in VARIANTS:
            command = [sys.executable, __file__, "--one", model, variant]
            command += ["--steps", str(args.steps), "--batch", str(args.batch)]
            command += ["--device", args.device]
            row = json.loads(subprocess.run(command, check=True, capture_output=True).stdout)
            rows.append(row)
            train_mb = (row["param_bytes"] + row["grad_bytes"] + row["optimizer_bytes"]) / 2**20
            print(
                f"{model:<11} {variant:<11} {row['k']:>8,} {train_mb:>9.2f} "
                f"{row['index_bytes'] / 2**20:>9.2f} {row['peak_rss_mb']:>11.0f} "
                f"{row['step_ms']:>8.0f}",
                flush=True,
            )
    summary = report(rows)
    for model, ratios in summary.items():
        print(model, " ".join(f"{k}={v:.3g}" for k, v in ratios.items()))
    results = RESULTS.with_name(f"apet_memory_speed_{args.device}.json")
    results.parent.mkdir(exist_ok=True)
    results.write_text(json.dumps({"rows": rows, "summary": summary}, indent=2) + "\n")
    print(f"written: {results}")


if __name__ == "__main__":
    main()

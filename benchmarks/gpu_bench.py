"""Training-step time and memory of every method, side by side in one process.

Random weights of the study's shapes (configs in ``src/petscale/zoo/configs``, or the
``minilm-l6`` shape), bf16 autocast, a fixed random batch (32 x 128 by default), every variant
its own model copy on the device, and their steps (forward + backward + AdamW) interleaved
round by round so that clocks and load hit all alike; the median over rounds is reported.

Per model: every method's step as a ratio to the frozen floor (only the head trains; prompt
tuning runs 100 more tokens), petscale LoRA against PEFT LoRA (time and peak memory), and
APET discrete/adjacent at LoRA's K. On one model (``--sweep``), APET at K = 1e3..1e7 against
LoRA, each pattern with the formulation the device rule picks (``auto``) and each formulation
forced, with peak memory. Peak memory of a variant (CUDA only) = what it keeps between steps
(its model copy, trainable tensors, Adam state) + the step's transient peak, i.e. what it would
peak at alone.

Run:  PYTHONPATH=src python benchmarks/gpu_bench.py [--tiny] [--out DIR]
      (``benchmarks/gpu_bench.sh`` is the GPU machine's wrapper.)
      On a CPU, the issue's table: ``--models minilm-l6 --length 64 --sweep minilm-l6``
      (fp32 there by default: what a CPU trial runs; ``--precision bf16`` to force autocast).
``--tiny``: 2-layer shapes, batch 4 x 16, two rounds: a check that everything runs (on CPU).
Writes ``gpu_bench_<device>.json`` (and ``.md``, the tables) under ``--out``.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn
from transformers import AutoConfig, AutoModelForSequenceClassification, BertConfig

from petscale.budget import attach_method
from petscale.heads import head_parameters
from petscale.zoo.structure import structure_of

CONFIGS = Path(__file__).parents[1] / "src" / "petscale" / "zoo" / "configs"
MODELS = "bert-base-uncased,bert-large-uncased,bloom-560m"
#: (variant, options): APET at LoRA's K by default; ``apet-discrete-qv`` on LoRA's two targets.
METHODS = (
    ("lora", {}),
    ("peft-lora", {}),
    ("apet-discrete", {}),
    ("apet-adjacent", {}),
    ("apet-discrete-qv", {"targets": "q,v"}),
    ("bitfit", {}),
    ("adapter", {}),
    ("prompt", {}),
)
#: bf16 autocast (set from ``--precision``): on CUDA by default, not on a CPU (fp32 there).
BF16 = True
TINY = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=256)
TINY_BLOOM = dict(hidden_size=64, n_layer=2, n_head=2, vocab_size=1000)


@dataclass
class Variant:
    name: str
    model: nn.Module
    optimizer: torch.optim.Optimizer
    trainable: int
    detail: str = ""
    resident_mb: float = 0.0
    transient_mb: list[float] = field(default_factory=list)
    ms: list[float] = field(default_factory=list)


def model_config(name: str, tiny: bool) -> AutoConfig:
    if name == "minilm-l6":
        config = BertConfig(
            hidden_size=384, num_hidden_layers=6, num_attention_heads=12, intermediate_size=1536
        )
    else:
        raw = json.loads((CONFIGS / f"{name}.json").read_text())
        raw = {k: v for k, v in raw.items() if not k.startswith("_")}
        config = AutoConfig.for_model(**raw)
    if tiny:
        for key, value in (TINY_BLOOM if config.model_type == "bloom" else TINY).items():
            setattr(config, key, value)
    config.num_labels = 2
    return config


def build(config: AutoConfig, device: torch.device) -> nn.Module:
    torch.manual_seed(0)
    with device:  # initialised on the device: fast on a GPU
        model = AutoModelForSequenceClassification.from_config(config)
    return model.train()


def head_only(model: nn.Module) -> list[nn.Parameter]:
    model.requires_grad_(False)
    head = list(head_parameters(model, structure_of(model)).values())
    for p in head:
        p.requires_grad_(True)
    return head


def peft_lora(model: nn.Module) -> tuple[nn.Module, list[nn.Parameter], list[nn.Parameter]]:
    """PEFT's LoRA with petscale's defaults (r 8, alpha 16, no dropout, q and v) + the head."""
    import peft

    fused = model.config.model_type == "bloom"
    targets = ["query_key_value"] if fused else ["query", "value"]
    config = peft.LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, target_modules=targets)
    wrapped = peft.get_peft_model(model, config)
    head = list(head_parameters(model, structure_of(model)).values())
    for p in head:  # petscale's head trains in every method; so here
        p.requires_grad_(True)
    lora = [p for n, p in wrapped.named_parameters() if "lora_" in n]
    return wrapped, lora, head


def make_variant(
    name: str, config: AutoConfig, device: torch.device, options: dict | None = None
) -> Variant:
    """``name``: floor, head-only, full, peft-lora, or a petscale method (``apet-<pattern>``).

    The floor is the frozen model with gradients flowing through its body, as under every
    method that trains something in its first layer; ``head-only`` trains the head alone (no
    backward through the body)."""
    before = memory_mb(device)
    model = build(config, device)
    detail = ""
    if name in ("floor", "head-only"):
        params = head_only(model)
        trainable = 0
        if name == "floor":
            embeddings = model.get_input_embeddings()
            embeddings.register_forward_hook(lambda _m, _i, out: out.requires_grad_())
    elif name == "full":
        params = list(model.parameters())
        trainable = sum(p.numel() for p in params)
    elif name == "peft-lora":
        model, lora, head = peft_lora(model)
        params, trainable = lora + head, sum(p.numel() for p in lora)
    else:
        method, _, pattern = name.removesuffix("-qv").partition("-")
        opts = dict(options or {})
        forced = opts.pop("formulation", None)
        if method == "apet":
            opts.setdefault("pattern", pattern)
        head = head_only(model)
        delta = attach_method(model, method, opts)
        if forced:
            for site in delta.sites.values():
                site.mode = forced
        if method == "apet":
            detail = "/".join(sorted({site.mode for site in delta.sites.values()}))
        params = list(delta.parameters().values()) + head
        trainable = delta.trainable_params
    optimizer = torch.optim.AdamW(params, lr=1e-5)
    variant = Variant(name, model, optimizer, trainable, detail)
    variant.resident_mb = -before  # completed after the warm-up, once Adam's state exists
    return variant


def memory_mb(device: torch.device) -> float:
    return torch.cuda.memory_allocated(device) / 2**20 if device.type == "cuda" else 0.0


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def step(variant: Variant, batch: dict[str, torch.Tensor], device: torch.device) -> None:
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=BF16):
        loss = variant.model(**batch).loss
    loss.backward()
    variant.optimizer.step()
    variant.optimizer.zero_grad(set_to_none=True)


def timed_step(variant: Variant, batch: dict[str, torch.Tensor], device: torch.device) -> None:
    sync(device)
    base = memory_mb(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    step(variant, batch, device)
    sync(device)
    variant.ms.append((time.perf_counter() - start) * 1000)
    if device.type == "cuda":
        variant.transient_mb.append(torch.cuda.max_memory_allocated(device) / 2**20 - base)


def run_variants(
    makers: list[Callable[[], Variant]],
    batch: dict[str, torch.Tensor],
    device: torch.device,
    rounds: int,
    warmup: int,
) -> list[Variant]:
    variants = []
    for make in makers:
        variant = make()
        for _ in range(warmup):
            step(variant, batch, device)
        sync(device)
        variant.resident_mb += memory_mb(device)
        variants.append(variant)
    for _ in range(rounds):
        for variant in variants:
            timed_step(variant, batch, device)
    return variants


def summary(variant: Variant) -> dict:
    peak = variant.resident_mb + max(variant.transient_mb) if variant.transient_mb else None
    return {
        "ms": statistics.median(variant.ms),
        "ms_all": [round(m, 2) for m in variant.ms],
        "trainable": variant.trainable,
        "formulation": variant.detail or None,
        "resident_mb": round(variant.resident_mb, 1) if variant.transient_mb else None,
        "peak_mb": None if peak is None else round(peak, 1),
    }


def make_batch(config: AutoConfig, size: int, length: int, device: torch.device) -> dict:
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(5, config.vocab_size, (size, length), generator=gen)
    labels = torch.randint(2, (size,), generator=gen)
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels}
    return {k: v.to(device) for k, v in batch.items()}


def free(variants: list[Variant], device: torch.device) -> None:
    variants.clear()
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def bench_methods(name: str, args: argparse.Namespace, device: torch.device) -> dict:
    config = model_config(name, args.tiny)
    batch = make_batch(config, args.batch, args.length, device)
    names = [("floor", {}), ("head-only", {}), *METHODS, ("full", {})]
    if config.model_type == "bloom":
        names.remove(("prompt", {}))  # prompt tuning of decoders runs through the LM, not this head
    makers = [lambda n=n, o=o: make_variant(n, config, device, o) for n, o in names]
    variants = run_variants(makers, batch, device, args.rounds, args.warmup)
    out = {v.name: summary(v) for v in variants}
    floor, lora = out["floor"]["ms"], out["lora"]["ms"]
    for row in out.values():
        row["x_floor"] = round(row["ms"] / floor, 3)
        row["x_lora"] = round(row["ms"] / lora, 3)
    if "prompt" in out:
        out["prompt"]["tokens"] = args.length + 100
    free(variants, device)
    return out


def bench_sweep(name: str, args: argparse.Namespace, device: torch.device) -> dict:
    config = model_config(name, args.tiny)
    batch = make_batch(config, args.batch, args.length, device)
    makers = [lambda: make_variant("lora", config, device)]
    for k in args.ks:
        for pattern, forced in (
            ("discrete", None),
            ("discrete", "entry"),
            ("discrete", "weight"),
            ("adjacent", None),
            ("adjacent", "slab"),
            ("adjacent", "weight"),
        ):
            opts = {"budget": k, "formulation": forced}

            def make(pattern: str = pattern, opts: dict = opts) -> Variant:
                variant = make_variant(f"apet-{pattern}", config, device, opts)
                forced = opts["formulation"]
                variant.name = f"{pattern} K={opts['budget']:g} {forced or 'auto'}"
                return variant

            makers.append(make)
    variants = run_variants(makers, batch, device, args.rounds, args.warmup)
    out = {v.name: summary(v) for v in variants}
    for row in out.values():
        row["x_lora"] = round(row["ms"] / out["lora"]["ms"], 3)
    free(variants, device)
    return out


def tables(result: dict) -> str:
    lines = [f"device: {result['device']}, torch {result['torch']}, {result['shape']}", ""]
    lines += [
        "| model | variant | trainable | step ms | x floor | x LoRA | peak MB | formulation |"
    ]
    lines += ["| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for model, rows in result["methods"].items():
        for name, r in rows.items():
            lines.append(
                f"| {model} | {name} | {r['trainable']:,} | {r['ms']:.1f} | {r['x_floor']:.2f} "
                f"| {r['x_lora']:.2f} | {r['peak_mb']} | {r['formulation'] or ''} |"
            )
    if not result["sweep"]:
        return "\n".join(lines)
    lines += ["", f"APET across K on {result['sweep_model']}:", ""]
    lines += [
        "| variant | step ms | x LoRA | peak MB | formulation |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, r in result["sweep"].items():
        lines.append(
            f"| {name} | {r['ms']:.1f} | {r['x_lora']:.2f} | {r['peak_mb']} "
            f"| {r['formulation'] or ''} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=MODELS)
    parser.add_argument(
        "--sweep", default="bert-large-uncased", help="the model of the K sweep ('' : none)"
    )
    parser.add_argument("--ks", default="1e3,1e4,1e5,1e6,1e7")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--length", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch's default)")
    parser.add_argument("--tiny", action="store_true", help="2-layer shapes: a quick check")
    parser.add_argument("--precision", choices=("auto", "bf16", "fp32"), default="auto")
    parser.add_argument("--tag", default="", help="added to the output files' names")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    if args.tiny:
        args.batch, args.length, args.rounds, args.warmup = 4, 16, 2, 1
        args.ks = "1e2,1e3,1e4"
    args.ks = [int(float(k)) for k in args.ks.split(",")]
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    global BF16
    BF16 = args.precision == "bf16" or (args.precision == "auto" and device.type == "cuda")
    result = {
        "device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "shape": f"batch {args.batch} x {args.length}, {'bf16 autocast' if BF16 else 'fp32'}, "
        f"{torch.get_num_threads()} threads, median of {args.rounds}",
        "tiny": args.tiny,
        "command": " ".join(sys.argv),
        "methods": {},
        "sweep_model": args.sweep,
    }
    for name in args.models.split(","):
        result["methods"][name] = bench_methods(name, args, device)
        print(f"{name}: done", file=sys.stderr, flush=True)
    result["sweep"] = bench_sweep(args.sweep, args, device) if args.sweep else {}
    args.out.mkdir(parents=True, exist_ok=True)
    stem = f"gpu_bench_{device.type}{'_tiny' if args.tiny else ''}{args.tag}"
    (args.out / f"{stem}.json").write_text(json.dumps(result, indent=1))
    text = tables(result)
    (args.out / f"{stem}.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()

"""What a user would write instead of ``petscale tune``: Hugging Face Trainer + PEFT LoRA at
their defaults (DataCollatorWithPadding, random batches, eval batch 8), on the same model,
data, steps, batch, max length, learning rate, warm-up and evaluation schedule.

Only the data comes through petscale (``get_task``), so both read the same examples. The dev
score is the Trainer's own evaluation at the last step (as petscale's is), not a second pass.
``--breakdown`` adds the wall time of each phase (timers only; nothing computed changes).
Run: .venv/bin/python benchmarks/hf_trainer_lora.py --steps 300 (prints one JSON line).
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import numpy as np
from datasets import Dataset
from peft import LoraConfig, get_peft_model
from transformers import (
    AutoModelForSequenceClassification,
    AutoTokenizer,
    DataCollatorWithPadding,
    Trainer,
    TrainingArguments,
)

from petscale.tasks import get_task
from petscale.zoo import assets


def timed(seconds: dict[str, float], name: str, function: Callable[..., Any]) -> Callable:
    """``function`` with its wall time added to ``seconds[name]``."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            seconds[name] += time.perf_counter() - start

    return wrapper


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="rotten_tomatoes")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--eval-every", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--breakdown", action="store_true", help="time each phase")
    args = parser.parse_args()
    started = time.perf_counter()
    phases: dict[str, float] = defaultdict(float)
    folder = assets.model_folder("minilm-l6")
    splits = get_task(args.task).splits()
    phases["task data"] = time.perf_counter() - started
    tokenizer = AutoTokenizer.from_pretrained(folder)

    def dataset(name: str) -> Dataset:
        rows = [{"text": ex["text"], "label": ex["label"]} for ex in splits[name]]
        return Dataset.from_list(rows).map(
            lambda b: tokenizer(b["text"], truncation=True, max_length=args.max_length),
            batched=True,
            remove_columns=["text"],
        )

    data = {name: dataset(name) for name in ("train", "dev", "test")}
    phases["tokenization"] = time.perf_counter() - started - phases["task data"]
    mark = time.perf_counter()
    model = AutoModelForSequenceClassification.from_pretrained(folder, num_labels=2)
    lora = LoraConfig(
        r=8, lora_alpha=16, target_modules=["query", "value"], modules_to_save=["classifier"]
    )
    model = get_peft_model(model, lora)
    phases["model load + attach"] = time.perf_counter() - mark
    collator = DataCollatorWithPadding(tokenizer)
    if args.breakdown:
        collator = timed(phases, "collation", collator)

    def accuracy(prediction) -> dict[str, float]:  # noqa: ANN001 - transformers' EvalPrediction
        return {
            "accuracy": float(np.mean(prediction.predictions.argmax(-1) == prediction.label_ids))
        }

    with tempfile.TemporaryDirectory() as out:
        training = TrainingArguments(
            output_dir=out,
            max_steps=args.steps,
            per_device_train_batch_size=args.batch_size,
            learning_rate=args.lr,
            warmup_ratio=0.06,
            eval_strategy="steps",
            eval_steps=args.eval_every,
            save_strategy="no",
            report_to=[],
            seed=args.seed,
            use_cpu=True,
            disable_tqdm=True,
        )
        trainer = Trainer(
            model=model,
            args=training,
            train_dataset=data["train"],
            eval_dataset=data["dev"],
            data_collator=collator,
            compute_metrics=accuracy,
        )
        if args.breakdown:
            trainer.evaluate = timed(phases, "evaluations", trainer.evaluate)
            trainer.compute_loss = timed(phases, "forward", trainer.compute_loss)
            trainer.training_step = timed(phases, "forward + backward", trainer.training_step)
        mark = time.perf_counter()
        trainer.train()
        phases["train (with dev evaluations)"] = time.perf_counter() - mark
        dev = [log["eval_accuracy"] for log in trainer.state.log_history if "eval_accuracy" in log]
        mark = time.perf_counter()
        test = trainer.evaluate(data["test"], metric_key_prefix="test")["test_accuracy"]
        phases["test"] = time.perf_counter() - mark
    report = {"dev_score": dev[-1], "test_score": test, "seconds": time.perf_counter() - started}
    if args.breakdown:
        phases["evaluations"] -= phases["test"]  # the dev ones, inside train
        report["phases_s"] = {k: round(v, 2) for k, v in phases.items()}
        usage = resource.getrusage(resource.RUSAGE_SELF)
        report["cpu_s"] = round(usage.ru_utime + usage.ru_stime, 1)
    print(json.dumps(report))


if __name__ == "__main__":
    main()

"""Tiny randomly initialised models of every supported family (hidden 32, 2 layers)."""

from __future__ import annotations

import csv
import random
from pathlib import Path

import torch
from torch import nn
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoModelForSeq2SeqLM,
    AutoModelForSequenceClassification,
    PretrainedConfig,
)

from petscale.tasks.base import TaskSpec

VOCAB = 96
HIDDEN = 32
FFN = 64
LAYERS = 2
LABELS = 3

# Toy task specs: a two-word sentiment task (label words) and a generation task.
SENTIMENT = TaskSpec(
    name="toy-sentiment",
    type="sentiment",
    kind="classification",
    labels=("neg", "pos"),
    label_words=("negative", "positive"),
)
QA = TaskSpec(name="toy-qa", type="qa", kind="generation", metrics=("token_f1",))

CONFIGS: dict[str, dict] = {
    "bert": dict(
        hidden_size=HIDDEN,
        num_hidden_layers=LAYERS,
        num_attention_heads=2,
        intermediate_size=FFN,
        max_position_embeddings=64,
        type_vocab_size=2,
    ),
    "roberta": dict(
        hidden_size=HIDDEN,
        num_hidden_layers=LAYERS,
        num_attention_heads=2,
        intermediate_size=FFN,
        max_position_embeddings=66,
        pad_token_id=1,
        type_vocab_size=1,
    ),
    "mpnet": dict(
        hidden_size=HIDDEN,
        num_hidden_layers=LAYERS,
        num_attention_heads=2,
        intermediate_size=FFN,
        max_position_embeddings=66,
        pad_token_id=1,
    ),
    "t5": dict(
        d_model=HIDDEN,
        d_ff=FFN,
        d_kv=8,
        num_heads=4,
        num_layers=LAYERS,
        num_decoder_layers=LAYERS,
        feed_forward_proj="gated-gelu",
        tie_word_embeddings=False,
        relative_attention_num_buckets=8,
        decoder_start_token_id=0,
        pad_token_id=0,
        eos_token_id=1,
    ),
    "gpt2": dict(n_embd=HIDDEN, n_layer=LAYERS, n_head=2, n_positions=64, pad_token_id=0),
    "bloom": dict(hidden_size=HIDDEN, n_layer=LAYERS, n_head=2, pad_token_id=0),
    # LLaMA-style: grouped-query attention (4 query heads, 2 key/value heads of width 8)
    "llama": dict(
        hidden_size=HIDDEN,
        intermediate_size=FFN,
        num_hidden_layers=LAYERS,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
        tie_word_embeddings=False,
        pad_token_id=0,
    ),
    # Gemma 3: q/k norms, four norms per block, scaled and tied embeddings, one sliding layer
    "gemma3_text": dict(
        hidden_size=HIDDEN,
        intermediate_size=FFN,
        num_hidden_layers=LAYERS,
        num_attention_heads=4,
        num_key_value_heads=1,
        head_dim=8,
        sliding_window=4,
        layer_types=["sliding_attention", "full_attention"],
        max_position_embeddings=64,
        pad_token_id=0,
    ),
}

#: The LLaMA-style decoders; their tests are in test_llama.py.
LLAMA_STYLE = ("llama", "gemma3_text")
FAMILIES = tuple(f for f in CONFIGS if f not in LLAMA_STYLE)
ENCODERS = ("bert", "roberta", "mpnet")


def config(family: str, **extra: object) -> PretrainedConfig:
    return AutoConfig.for_model(family, vocab_size=VOCAB, **{**CONFIGS[family], **extra})


def model(family: str, head: str = "classify", seed: int = 0, **extra: object) -> nn.Module:
    """``head``: classify (sequence classification) or lm (T5 seq2seq / decoder causal LM)."""
    torch.manual_seed(seed)
    cfg = config(family, num_labels=LABELS, **extra)
    if head == "classify":
        built = AutoModelForSequenceClassification.from_config(cfg)
    elif family == "t5":
        built = AutoModelForSeq2SeqLM.from_config(cfg)
    else:
        built = AutoModelForCausalLM.from_config(cfg)
    return built.eval()


def variants() -> list[tuple[str, str]]:
    """Every (family, head) pair the methods must support."""
    out = [(f, "classify") for f in FAMILIES]
    return out + [(f, "lm") for f in ("t5", "gpt2", "bloom")]


def batch(family: str, length: int = 7, size: int = 2, seed: int = 1) -> dict[str, torch.Tensor]:
    """Inputs with right padding on the second row (ids avoid the special ids 0..2)."""
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, VOCAB, (size, length), generator=generator)
    mask = torch.ones(size, length, dtype=torch.long)
    if size > 1:
        mask[1, length - 2 :] = 0
        ids[1, length - 2 :] = CONFIGS[family].get("pad_token_id", 0)
    if family == "t5":  # T5's classification head pools the last </s>
        ids[torch.arange(size), mask.sum(1) - 1] = CONFIGS["t5"]["eos_token_id"]
    inputs = {"input_ids": ids, "attention_mask": mask}
    if family == "bert":
        inputs["token_type_ids"] = torch.zeros_like(ids)
    return inputs


def run(net: nn.Module, family: str, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
    """The model's logits (T5 seq2seq gets decoder inputs of its own)."""
    extra = {}
    if net.config.model_type == "t5" and not hasattr(net, "classification_head"):
        extra["decoder_input_ids"] = inputs["input_ids"][:, :4]
    with torch.no_grad():
        return net(**inputs, **extra).logits


def save_bert_folder(folder: Path, hidden: int = HIDDEN) -> Path:
    """A 2-layer random BERT of width ``hidden`` with MiniLM's real tokenizer, as a local
    model folder (the same weights every session)."""
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    from petscale.zoo import assets

    config = BertConfig(
        vocab_size=30522,
        hidden_size=hidden,
        num_hidden_layers=LAYERS,
        num_attention_heads=2,
        intermediate_size=2 * hidden,
        max_position_embeddings=128,
    )
    torch.manual_seed(0)
    BertForSequenceClassification(config).save_pretrained(folder)
    AutoTokenizer.from_pretrained(assets.model_folder("minilm-l6")).save_pretrained(folder)
    return folder


def write_toy_task(
    folder: Path, fillers: list[str], seed: int, labels: tuple[str, ...] = ("good", "bad")
) -> Path:
    """A learnable CSV task: the label is which of the ``labels`` words (good, bad) a text of
    six ``fillers`` holds; train/dev/test of 160/40/40."""
    rng = random.Random(seed)
    for split, n in (("train", 160), ("dev", 40), ("test", 40)):
        with open(folder / f"{split}.csv", "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["text", "label"])
            for _ in range(n):
                label = rng.choice(labels)
                words = rng.choices(fillers, k=6) + [label]
                rng.shuffle(words)
                writer.writerow([" ".join(words), label])
    return folder


def dev_accuracy(model: nn.Module, tokenizer: object, task: str | Path, max_length: int) -> float:
    """A loaded run's accuracy on the task's dev split, scored one example at a time."""
    from petscale.tasks import get_task

    dev = get_task(str(task)).splits()["dev"]
    correct = 0
    with torch.no_grad():
        for example in dev:
            inputs = tokenizer(
                example["text"], truncation=True, max_length=max_length, return_tensors="pt"
            )
            correct += int(model(**inputs).logits.argmax(-1).item() == example["label"])
    return correct / len(dev)

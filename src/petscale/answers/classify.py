"""An encoder with a classification head: cross-entropy on the head's logits."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from transformers import PreTrainedTokenizerBase

from petscale.answers.base import Batch, Features, pad_batch
from petscale.tasks.base import Example, TaskSpec


class ClassifyAnswerer:
    def __init__(self, spec: TaskSpec, tokenizer: PreTrainedTokenizerBase, max_length: int):
        self.spec = spec
        self.tokenizer = tokenizer
        self.max_length = max_length

    def cache_key(self) -> str:
        return f"classify:max_length={self.max_length}"

    def encode(self, example: Example) -> Features:
        encoded = self.tokenizer(
            example["text"],
            example.get("text_pair"),
            truncation=True,
            max_length=self.max_length,
        )
        features = {k: list(v) for k, v in encoded.items()}
        features["labels"] = [example["label"]]
        return features

    def collate(self, features: list[Features]) -> Batch:
        batch = pad_batch(features, {"input_ids": self.tokenizer.pad_token_id})
        batch["labels"] = batch["labels"][:, 0]
        return batch

    def loss(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        return model(**batch).loss

    def predict(self, model: nn.Module, batch: Batch) -> list[Any]:
        inputs = {k: v for k, v in batch.items() if k != "labels"}
        return model(**inputs).logits.argmax(-1).tolist()

    def reference(self, example: Example) -> Any:
        return example["label"]

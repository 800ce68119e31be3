"""T5 answers in words: teacher-forced cross-entropy on the answer, greedy generation to predict.

A classification task's answer is its label word; the generated word maps back to its class
(anything else counts as wrong), so exact match is the accuracy the study reports.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from petscale.answers.base import Batch, Features, pad_batch
from petscale.answers.words import IGNORE, WordAnswerer, unwrap


class Seq2SeqAnswerer(WordAnswerer):
    name = "seq2seq"
    source_suffix = True
    answer_space = ""
    words_end = True

    def collate(self, features: list[Features]) -> Batch:
        rows = [
            {
                "input_ids": f["input_ids"],
                "attention_mask": [1] * len(f["input_ids"]),
                "labels": f["target_ids"],
            }
            for f in features
        ]
        return pad_batch(rows, {"input_ids": self.pad_id, "labels": IGNORE})

    def loss(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        return model(**batch).loss  # T5 builds the decoder inputs by shifting the labels

    def predict(self, model: nn.Module, batch: Batch) -> list[Any]:
        generated = unwrap(model).generate(
            input_ids=batch["input_ids"],
            attention_mask=batch["attention_mask"],
            **self.generation_options(),
        )
        return self.from_generated(generated[:, 1:])  # drop the decoder's start token

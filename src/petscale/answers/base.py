"""The interface every answer format implements."""

from __future__ import annotations

from typing import Any, Protocol

import torch
from torch import nn

from petscale.tasks.base import Example

Features = dict[str, list[int]]
Batch = dict[str, torch.Tensor]


class Answerer(Protocol):
    #: what, besides tokenizer and task, decides the features (template, max length)
    def cache_key(self) -> str: ...

    def encode(self, example: Example) -> Features: ...

    def collate(self, features: list[Features]) -> Batch: ...

    def loss(self, model: nn.Module, batch: Batch) -> torch.Tensor: ...

    def predict(self, model: nn.Module, batch: Batch) -> list[Any]: ...

    def reference(self, example: Example) -> Any: ...


def pad_batch(rows: list[Features], pad_values: dict[str, int], side: str = "right") -> Batch:
    """Stack ragged features into tensors, padding each field to the longest row.

    ``pad_values`` gives the fill per field (the tokenizer's pad id for ``input_ids``, -100 for
    ``labels``); fields not named there are padded with 0 (attention masks, token types).
    """
    batch: Batch = {}
    for field in rows[0]:
        longest = max(len(row[field]) for row in rows)
        fill = pad_values.get(field, 0)
        padded = []
        for row in rows:
            gap = [fill] * (longest - len(row[field]))
            padded.append(row[field] + gap if side == "right" else gap + row[field])
        batch[field] = torch.tensor(padded, dtype=torch.long)
    return batch

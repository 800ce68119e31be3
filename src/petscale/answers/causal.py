"""A decoder (GPT-2, BLOOM) answers in words after its prompt.

Training: cross-entropy on the answer's ids only (the prompt and padding carry no loss).
Classification: each label word is scored by the sum of its ids' log-probabilities given the
prompt (the word's exact log-likelihood); the best-scoring class is the prediction.
Generation: greedy decoding from the prompt.

Sequences are right-padded for the loss and for scoring, so every real token keeps the
position it would have alone (GPT-2's learned positions, BLOOM's ALiBi from the mask); they are
left-padded only for ``generate``, which derives positions from the attention mask itself.
Scoring runs the LM head on the answer's positions alone, never on the whole
(batch x length x vocab), which for BLOOM's 250k vocabulary would dwarf the model's activations.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from petscale.answers.base import Batch, Features, pad_batch
from petscale.answers.words import IGNORE, WordAnswerer, unwrap


class CausalAnswerer(WordAnswerer):
    name = "causal"
    source_suffix = False
    answer_space = " "  # "Output: " + word: the word reads as " positive", as in running text
    words_end = False

    def collate(self, features: list[Features]) -> Batch:
        rows = []
        for f in features:
            prompt, target = f["input_ids"], f["target_ids"]
            rows.append(
                {
                    "input_ids": prompt + target,
                    "attention_mask": [1] * (len(prompt) + len(target)),
                    "labels": [IGNORE] * len(prompt) + target,
                    "prompt_ids": prompt,  # alone, for scoring label words and generating
                    "prompt_mask": [1] * len(prompt),
                }
            )
        pad_values = {"input_ids": self.pad_id, "prompt_ids": self.pad_id, "labels": IGNORE}
        return pad_batch(rows, pad_values)

    def loss(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        # transformers' loss: the mean over the answer tokens. Called through the model itself,
        # so that a wrapper (DDP, mixed precision) sees the forward pass.
        keys = ("input_ids", "attention_mask", "labels")
        return model(**{key: batch[key] for key in keys}).loss

    def predict(self, model: nn.Module, batch: Batch) -> list[Any]:
        model = unwrap(model)
        if self.classify:
            return self.scores(model, batch).argmax(-1).tolist()
        prompts, prompt_mask = left_align(batch["prompt_ids"], batch["prompt_mask"])
        generated = model.generate(
            input_ids=prompts, attention_mask=prompt_mask, **self.generation_options()
        )
        return self.from_generated(generated[:, prompts.shape[1] :])

    def scores(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        """Batch x classes: the log-likelihood of each label word after each prompt."""
        prompts, prompt_mask = batch["prompt_ids"], batch["prompt_mask"]
        size, lengths = prompts.shape[0], prompt_mask.sum(-1, keepdim=True)
        columns = []
        for word in self.word_ids:  # one forward pass per class, bounded by the batch size
            ids = torch.tensor(word, device=prompts.device).expand(size, -1)
            where = lengths + torch.arange(len(word), device=prompts.device)
            tail = prompts.new_full((size, len(word)), self.pad_id)
            sequences = torch.cat([prompts, tail], -1).scatter(1, where, ids)
            attention = torch.cat([prompt_mask, torch.zeros_like(tail)], -1).scatter(1, where, 1)
            labels = torch.full_like(sequences, IGNORE).scatter(1, where, ids)
            logp, rows = answer_logprobs(model, sequences, attention, labels)
            columns.append(logp.new_zeros(size).index_add(0, rows, logp))
        return torch.stack(columns, -1)


def answer_logprobs(
    model: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor, labels: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-probabilities of the labelled tokens given what precedes them, and their rows.

    It runs the backbone and applies the LM head itself (on the answer's positions alone), so
    it sees what training's forward sees only because every method acts inside the backbone:
    soft tokens (prompt, APET concat) are spliced into its stack and cut from its output.
    """
    targets = labels[:, 1:]
    chosen = targets != IGNORE
    backbone = _backbone(model)
    if backbone is model:  # no separate LM head to apply: take the model's logits
        logits = model(input_ids=input_ids, attention_mask=attention_mask).logits
        logits = logits[:, :-1][chosen]
    else:
        hidden = backbone(input_ids=input_ids, attention_mask=attention_mask)[0]
        logits = _softcap(model, model.get_output_embeddings()(hidden[:, :-1][chosen]))
    logp = logits.float().log_softmax(-1).gather(-1, targets[chosen][:, None]).squeeze(-1)
    return logp, chosen.nonzero()[:, 0]


def _backbone(model: nn.Module) -> nn.Module:
    """The stack under the LM head. Gemma 3's causal LM is its own ``base_model`` (its prefix
    names a multimodal wrapper's attribute); ``get_decoder`` finds its text stack."""
    if model.base_model is not model:
        return model.base_model
    return model.get_decoder() if hasattr(model, "get_decoder") else model


def _softcap(model: nn.Module, logits: torch.Tensor) -> torch.Tensor:
    """Gemma-style final logit soft-capping, which the causal-LM wrapper applies after its head."""
    cap = getattr(model.config, "final_logit_softcapping", None)
    return torch.tanh(logits / cap) * cap if cap else logits


def left_align(ids: torch.Tensor, attention: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded rows -> left-padded rows (what ``generate`` expects of a decoder)."""
    width = ids.shape[1]
    shift = width - attention.sum(-1, keepdim=True)
    index = (torch.arange(width, device=ids.device) - shift) % width
    return ids.gather(1, index), attention.gather(1, index)

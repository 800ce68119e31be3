"""What makes a whole trial fast: length-grouped batches, tokenization done once, losses read
back without a host sync per step."""

from __future__ import annotations

import math

import torch
from accelerate import Accelerator
from transformers import AutoTokenizer

import tiny
from petscale import features as features_module
from petscale import train as train_module
from petscale.answers import answerer_for
from petscale.checkpoints import TrainState
from petscale.features import encode_splits
from petscale.tasks.base import Example, TaskSpec
from petscale.train import TrainConfig, batches, train
from petscale.zoo import assets

SPEC = TaskSpec(name="toy-speed", type="sentiment", kind="classification", labels=("n", "p"))


def padded_tokens(cut: list[list[int]], lengths: list[int]) -> int:
    return sum(len(b) * max(lengths[i] for i in b) for b in cut)


def test_batches_group_lengths_cover_each_epoch_and_follow_the_seed() -> None:
    gen = torch.Generator().manual_seed(0)
    lengths = torch.randint(5, 120, (1000,), generator=gen).tolist()

    def epoch(seed: int) -> list[list[int]]:
        stream = batches(lengths, 8, torch.Generator().manual_seed(seed))
        return [next(stream) for _ in range(125)]

    first = epoch(0)
    assert sorted(i for b in first for i in b) == list(range(1000))  # each example once
    assert first == epoch(0) and first != epoch(1)
    shuffled = torch.randperm(1000, generator=gen).tolist()
    random_cut = [shuffled[i : i + 8] for i in range(0, 1000, 8)]
    # batches of similar length: far less padding than random batches
    assert padded_tokens(first, lengths) < 0.7 * padded_tokens(random_cut, lengths)


def test_splits_are_tokenized_once(monkeypatch) -> None:
    tokenizer = AutoTokenizer.from_pretrained(assets.model_folder("minilm-l6"))
    answerer = answerer_for("classify", SPEC, tokenizer, 16)
    examples = [Example(text=f"text number {i}", label=i % 2) for i in range(6)]
    splits = {"train": examples[:4], "dev": examples[4:]}
    calls = []
    encode = answerer.encode
    monkeypatch.setattr(answerer, "encode", lambda ex: calls.append(ex) or encode(ex))
    first = encode_splits(answerer, tokenizer, splits)
    assert len(calls) == 6
    assert encode_splits(answerer, tokenizer, splits) is first  # memory: the same object
    monkeypatch.setattr(features_module, "_memory", {})  # a new process: read from disk
    assert encode_splits(answerer, tokenizer, splits) == first
    assert len(calls) == 6


class Recorder(Accelerator):
    def __init__(self) -> None:
        super().__init__(cpu=True)
        self.logged: list[tuple[int, dict]] = []

    def log(self, values: dict, step: int | None = None, log_kwargs: dict | None = None) -> None:
        self.logged.append((step, values))


def test_losses_read_back_in_blocks_keep_every_step_and_log() -> None:
    """On an accelerator losses are read back every SYNC_EVERY steps: every step's loss is still
    recorded and logged with its own step, and the dev score with the evaluation's step."""
    # each step's loss, learning rate and gradient norm (none where the step did not clip)
    norms = {1: 0.5, 2: math.nan, 3: 1.5}
    pending = [
        train_module.Pending(step, torch.tensor(float(step)), torch.tensor(norms[step]), 0.1)
        for step in (1, 2, 3)
    ]
    state = TrainState(step=3, curve=[(3, 0.5)])
    recorder = Recorder()
    train_module._read_back(pending, state, recorder)
    assert state.losses == [1.0, 2.0, 3.0] and pending == []
    assert recorder.logged == [
        (1, {"train_loss": 1.0, "lr": 0.1, "grad_norm": 0.5}),
        (2, {"train_loss": 2.0, "lr": 0.1}),
        (3, {"train_loss": 3.0, "lr": 0.1, "grad_norm": 1.5, "dev_score": 0.5}),
    ]


def test_train_records_every_loss() -> None:
    model = tiny.model("bert")
    rows = [tiny.batch("bert", length=4 + i % 5, size=1, seed=i) for i in range(12)]
    feats = [
        {k: v[0].tolist() for k, v in row.items()} | {"labels": [i % tiny.LABELS]}
        for i, row in enumerate(rows)
    ]

    class Answerer:
        def collate(self, fs):  # noqa: ANN001, ANN202
            from petscale.answers.base import pad_batch

            batch = pad_batch(fs, {"input_ids": 0})
            batch["labels"] = batch["labels"][:, 0]
            return batch

        def loss(self, model, batch):  # noqa: ANN001, ANN202
            return model(**batch).loss

    config = TrainConfig(steps=7, batch_size=4, eval_every=3)
    result = train(
        model, list(model.parameters()), Answerer(), feats, lambda: 0.25, config, Recorder()
    )
    assert len(result.losses) == 7 and all(torch.isfinite(torch.tensor(result.losses)))
    assert result.curve == [(3, 0.25), (6, 0.25), (7, 0.25)]

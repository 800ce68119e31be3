"""The Python API as a Python user expects it: ``attach`` trains a sequence-classification
head as PEFT does, errors name keyword arguments, ``load`` is quiet, and in-memory data
(pandas, datasets) is a task."""

from __future__ import annotations

import csv
import shutil

import pytest
import torch
from transformers import AutoModel, AutoModelForSequenceClassification
from transformers.utils import logging as transformers_logging

import petscale
from petscale.errors import UserError
from petscale.heads import head_parameters
from petscale.zoo.structure import structure_of

SMALL = {"steps": 2, "batch_size": 8, "max_length": 16}


def _trainable(model: torch.nn.Module) -> set[str]:
    return {n for n, p in model.named_parameters() if p.requires_grad}


def test_attach_trains_the_classification_head_unless_told_not_to(tiny_bert):
    model = AutoModelForSequenceClassification.from_pretrained(tiny_bert, num_labels=2)
    head = set(head_parameters(model, structure_of(model)))
    assert head == {"classifier.weight", "classifier.bias"}
    delta = petscale.attach(model, "lora", rank=2)
    assert _trainable(model) == head | {f"{n}" for n in _lora_names(model)}
    assert delta.trainable_params + sum(model.get_submodule("classifier").weight.shape) > 0
    frozen = AutoModelForSequenceClassification.from_pretrained(tiny_bert, num_labels=2)
    petscale.attach(frozen, "lora", rank=2, train_head=False)
    assert not (_trainable(frozen) & head)


def _lora_names(model: torch.nn.Module) -> list[str]:
    return [n for n, p in model.named_parameters() if p.requires_grad and "lora" in n.lower()]


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda m: petscale.count(model=m, method="lora", rnak=4), "rnak= does not apply"),
        (lambda m: petscale.count(model=m, method="lora", budget=10, rank=2), "budget= or"),
        (lambda m: petscale.tune(model=m, task="x.csv", steps=-1), "steps= must be positive"),
    ],
)
def test_api_errors_name_the_keyword_not_the_flag(tiny_bert, call, message):
    with pytest.raises(UserError, match=message) as raised:
        call(str(tiny_bert))
    assert "--" not in str(raised.value)


@pytest.fixture
def chatty_transformers():
    """transformers at its default verbosity (warnings), whatever earlier tests set, its
    records sent on to pytest's log capture."""
    before = transformers_logging.get_verbosity()
    transformers_logging.set_verbosity_warning()
    transformers_logging.enable_propagation()
    yield
    transformers_logging.disable_propagation()
    transformers_logging.set_verbosity(before)


def test_tune_and_load_say_nothing_of_fresh_weights(
    tiny_bert, toy_task, tmp_path, caplog, chatty_transformers
):
    # a checkpoint without a classifier, as the offline sentence encoders are: transformers
    # warns that the head is newly initialized, though the run's own head is then loaded
    base = tmp_path / "base"
    AutoModel.from_pretrained(tiny_bert).save_pretrained(base)
    for part in tiny_bert.iterdir():
        if part.name.startswith(("token", "vocab", "special")):
            shutil.copy(part, base / part.name)
    AutoModelForSequenceClassification.from_pretrained(base, num_labels=2)
    assert "newly initialized" in caplog.text  # what transformers says, and the test sees
    caplog.clear()
    petscale.tune(model=str(base), task=str(toy_task), out=tmp_path / "run", **SMALL)
    petscale.load(tmp_path / "run")
    assert "newly initialized" not in caplog.text and "TRAIN" not in caplog.text


def _rows(toy_task) -> list[dict]:
    with open(toy_task / "train.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_a_dataframe_is_a_task_and_the_same_data_the_same_trial(tiny_bert, toy_task):
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame(_rows(toy_task))
    one = petscale.tune(model=str(tiny_bert), task=frame, **SMALL)
    two = petscale.tune(model=str(tiny_bert), task=frame.copy(), **SMALL)
    assert one["task"] == two["task"] and one["dev_score"] == two["dev_score"]
    assert petscale.tune(model=str(tiny_bert), task=frame.head(40), **SMALL)["task"] != one["task"]


def test_a_datasets_dict_is_a_task_with_its_splits(tiny_bert, toy_task):
    datasets = pytest.importorskip("datasets")
    rows = _rows(toy_task)
    data = datasets.DatasetDict(
        {
            "train": datasets.Dataset.from_list(rows[:60]),
            "validation": datasets.Dataset.from_list(rows[60:80]),
            "test": datasets.Dataset.from_list(rows[80:100]),
        }
    )
    result = petscale.tune(model=str(tiny_bert), task=data, eval_limit=0, **SMALL)
    assert result["dev_examples"] == 20 and result["test_examples"] == 20


def test_data_that_is_no_table_is_refused_in_one_line(tiny_bert):
    with pytest.raises(UserError, match="expected a task name, a path, a pandas DataFrame"):
        petscale.tune(model=str(tiny_bert), task=[1, 2, 3], **SMALL)
    with pytest.raises(UserError, match="unknown split 'extra'"):
        petscale.tune(model=str(tiny_bert), task={"extra": object()}, **SMALL)

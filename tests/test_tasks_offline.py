"""The offline package tasks, the registry and the ``petscale tasks`` listing."""

import json

import pytest

from petscale.cli.tasks import task_rows, tasks_command
from petscale.tasks import DEFAULT_TASK, TASKS, get_task
from petscale.tasks.hub import HUB_TASKS
from petscale.tasks.offline import OFFLINE_TASKS
from petscale.tasks.trec import TRUE_LABEL, fine_word

STUDY = {"sst2", "rotten_tomatoes_hf", "imdb", "mnli", "qnli", "rte", "mrpc", "qqp"}
STUDY |= {"nq_open", "samsum", "multi_news"}


def test_registry_holds_every_task() -> None:
    assert set(HUB_TASKS) == STUDY
    assert DEFAULT_TASK in TASKS
    assert set(TASKS) == {"rotten_tomatoes", *OFFLINE_TASKS, *HUB_TASKS}


def test_specs_are_consistent() -> None:
    for name in HUB_TASKS:
        spec = get_task(name).spec
        assert len(spec.label_words) == spec.num_labels
        assert len(spec.input_fields) == (2 if spec.pair else 1)
    assert get_task("mnli").spec.random_guess() == pytest.approx(1 / 3)
    assert get_task("nq_open").spec.random_guess() is None
    assert get_task("mrpc").spec.metrics == ("accuracy", "f1")


def test_trec_table_is_a_bijection_onto_true_labels() -> None:
    assert len(set(TRUE_LABEL.values())) == len(TRUE_LABEL) == 47
    words = [fine_word(label) for label in TRUE_LABEL.values()]
    assert len(set(words)) == len(words)


@pytest.mark.real
@pytest.mark.parametrize("name", ["rotten_tomatoes", *OFFLINE_TASKS])
def test_offline_task_loads(name: str) -> None:
    task = get_task(name)
    spec = task.spec
    splits = task.splits()
    assert set(splits) == {"train", "dev", "test"}
    assert all(len(examples) > 0 for examples in splits.values())
    assert len(spec.label_words) == spec.num_labels == len(set(spec.label_words))
    for examples in splits.values():
        assert {ex["label"] for ex in examples} <= set(range(spec.num_labels))
        assert all(ex["text"] for ex in examples)
    assert {ex["label"] for ex in splits["train"]} == set(range(spec.num_labels))
    assert 0 < task.majority_score() < 1


@pytest.mark.real
def test_trec_coarse_types_follow_the_questions() -> None:
    task = get_task("trec")
    for start, coarse in [("How many", "NUM"), ("Where ", "LOC"), ("Who invented", "HUM")]:
        label = task.spec.labels.index(coarse)
        asked = [ex for ex in task.splits()["train"] if ex["text"].startswith(start)]
        assert sum(ex["label"] == label for ex in asked) / len(asked) > 0.9, start


@pytest.mark.real
def test_20ng_text_does_not_name_the_newsgroup() -> None:
    assert not any(ex["text"].startswith("Newsgroup:") for ex in get_task("20ng").splits()["dev"])


@pytest.mark.real
def test_tasks_listing(capsys: pytest.CaptureFixture[str], monkeypatch) -> None:
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    rows = {row["name"]: row for row in task_rows()}
    assert rows["trec"]["sizes"] == {"train": 4849, "dev": 532, "test": 490}
    assert not rows["sst2"]["available"] and rows["sst2"]["sizes"] is None
    tasks_command(json_output=True)
    assert len(json.loads(capsys.readouterr().out)) == len(TASKS)
    tasks_command()
    assert "bbc_news" in capsys.readouterr().out

"""The study's hub tasks from local copies in each task's hub schema, and their errors."""

import json
import time
from pathlib import Path

import pytest

from petscale.errors import UserError
from petscale.tasks import get_task
from petscale.tasks.hub import HUB_TASKS

datasets = pytest.importorskip("datasets")

# task -> (hub split names, one row in the hub's columns)
SCHEMAS = {
    "sst2": (["train", "validation", "test"], {"sentence": "good film", "label": 1}),
    "rotten_tomatoes_hf": (["train", "validation", "test"], {"text": "dull", "label": 0}),
    "imdb": (["train", "test"], {"text": "a fine movie", "label": 1}),
    "mnli": (
        ["train", "validation_matched", "validation_mismatched"],
        {"premise": "A man sleeps.", "hypothesis": "A man rests.", "label": 0},
    ),
    "qnli": (["train", "validation"], {"question": "Who?", "sentence": "Him.", "label": 0}),
    "rte": (["train", "validation"], {"sentence1": "a", "sentence2": "b", "label": 1}),
    "mrpc": (["train", "validation"], {"sentence1": "a", "sentence2": "b", "label": 1}),
    "qqp": (["train", "validation"], {"question1": "a?", "question2": "b?", "label": 0}),
    "nq_open": (["train", "validation"], {"question": "where?", "answer": ["here", "there"]}),
    "samsum": (["train", "validation", "test"], {"dialogue": "A: hi\nB: yo", "summary": "hi"}),
    "multi_news": (["train", "validation", "test"], {"document": "doc ||||| doc", "summary": "s"}),
}


def rows(name: str, n: int = 20) -> list[dict]:
    row = SCHEMAS[name][1]
    return [{**row, **({"label": i % 2} if "label" in row else {})} for i in range(n)]


def save_to_disk(folder: Path, name: str) -> None:
    splits = {split: datasets.Dataset.from_list(rows(name)) for split in SCHEMAS[name][0]}
    datasets.DatasetDict(splits).save_to_disk(str(folder / name))


def write_jsonl(folder: Path, name: str) -> None:
    (folder / name).mkdir(parents=True)
    for split in SCHEMAS[name][0]:
        text = "".join(json.dumps(row) + "\n" for row in rows(name))
        (folder / name / f"{split}.jsonl").write_text(text, encoding="utf-8")


@pytest.mark.parametrize("name", sorted(SCHEMAS))
@pytest.mark.parametrize("writer", [save_to_disk, write_jsonl])
def test_local_copy_in_hub_schema(tmp_path: Path, name: str, writer) -> None:
    writer(tmp_path, name)
    task = get_task(name, data_dir=tmp_path)
    assert task.unavailable_reason() is None and not task.remote
    splits = task.splits()
    first = splits["train"][0]
    assert first["text"] == str(next(iter(SCHEMAS[name][1].values())))
    if task.spec.pair:
        assert "text_pair" in first
    if task.spec.kind == "classification":
        assert {ex["label"] for ex in splits["train"]} <= set(range(task.spec.num_labels))
        assert task.majority_score() is not None
    else:
        assert first["target"] == first["references"][0]
    if name == "imdb":  # no validation split: a seeded 10% of train
        assert (len(splits["train"]), len(splits["dev"]), len(splits["test"])) == (18, 2, 20)
    if name == "mnli":
        assert len(splits["test"]) == 20  # validation_mismatched


def test_nq_open_keeps_every_answer(tmp_path: Path) -> None:
    save_to_disk(tmp_path, "nq_open")
    example = get_task("nq_open", data_dir=tmp_path).splits()["dev"][0]
    assert example["references"] == ["here", "there"]


def test_glue_hidden_test_labels_are_dropped(tmp_path: Path) -> None:
    folder = tmp_path / "sst2"
    folder.mkdir()
    for split in ("train", "validation", "test"):
        labels = [-1] * 3 if split == "test" else [0, 1, 1]  # train needs two classes
        lines = [json.dumps({"sentence": "s", "label": label}) + "\n" for label in labels]
        (folder / f"{split}.jsonl").write_text("".join(lines), encoding="utf-8")
    assert "test" not in get_task("sst2", data_dir=tmp_path).splits()


def test_csv_copy_with_label_names_and_renamed_columns(tmp_path: Path) -> None:
    (tmp_path / "train.csv").write_text("p,h,y\na,b,neutral\nc,d,entailment\n", encoding="utf-8")
    (tmp_path / "dev.csv").write_text("p,h,y\ne,f,contradiction\n", encoding="utf-8")
    task = get_task("mnli", data_dir=tmp_path, text_field="p", text_pair_field="h", label_field="y")
    assert task.splits()["dev"] == [{"text": "e", "text_pair": "f", "label": 2}]


def test_pair_task_given_one_field(tmp_path: Path) -> None:
    (tmp_path / "train.csv").write_text("p,label\na,0\n", encoding="utf-8")
    with pytest.raises(UserError, match="'rte' is a text-pair task and needs two input fields"):
        get_task("rte", data_dir=tmp_path, text_field="p").splits()


def test_missing_hub_column_names_the_columns(tmp_path: Path) -> None:
    (tmp_path / "train.jsonl").write_text('{"sentence1": "a", "label": 0}\n', encoding="utf-8")
    with pytest.raises(UserError, match=r"no column 'sentence2'.*columns are: sentence1, label"):
        get_task("mrpc", data_dir=tmp_path).splits()


def test_bad_label_value(tmp_path: Path) -> None:
    (tmp_path / "train.jsonl").write_text('{"sentence": "a", "label": "meh"}\n', encoding="utf-8")
    with pytest.raises(UserError, match=r"train.jsonl line 1: label 'meh' is not one of"):
        get_task("sst2", data_dir=tmp_path).splits()


def test_offline_gives_one_line_fast(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.delenv("PETSCALE_DATA_DIR", raising=False)
    for name in HUB_TASKS:
        start = time.monotonic()
        task = get_task(name, data_dir=tmp_path)  # an empty folder: no local copy
        with pytest.raises(UserError) as error:
            task.splits()
        message = str(error.value)
        assert "\n" not in message and f"task {name!r}" in message and "--data-dir" in message
        assert "save_to_disk" in message and "HF_DATASETS_OFFLINE" in message
        assert task.unavailable_reason() == message
        assert time.monotonic() - start < 1.0


def test_options_rejected_for_packaged_tasks(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="'trec' ships with its data; data_dir applies only"):
        get_task("trec", data_dir=tmp_path)


def test_a_local_copy_s_image_column_is_never_decoded(tmp_path: Path) -> None:
    # An Image column's rows name files (or URLs) that decoding would open: dropped unread.
    photo = tmp_path / "photo.png"
    photo.write_bytes(b"not an image: decoding it fails")
    splits = {}
    for split in SCHEMAS["sst2"][0]:
        data = [{**row, "photo": {"path": str(photo)}} for row in rows("sst2")]
        features = datasets.Features(
            sentence=datasets.Value("string"),
            label=datasets.ClassLabel(num_classes=2),
            photo=datasets.Image(),
        )
        splits[split] = datasets.Dataset.from_list(data, features=features)
    datasets.DatasetDict(splits).save_to_disk(str(tmp_path / "sst2"))
    photo.unlink()
    first = get_task("sst2", data_dir=tmp_path).splits()["train"][0]
    assert first["text"] == "good film" and "photo" not in first

"""The user's own files as a task, and every bad-data error."""

import json
from pathlib import Path

import pytest

from petscale.errors import UserError
from petscale.tasks import get_task


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def test_single_csv_gets_seeded_dev_and_sorted_labels(tmp_path: Path) -> None:
    rows = "".join(f"text {i},{'pos' if i % 3 else 'neg'}\n" for i in range(50))
    (tmp_path / "data.csv").write_text("text,label\n" + rows, encoding="utf-8")
    task = get_task(str(tmp_path / "data.csv"), seed=1)
    assert task.spec.labels == ("neg", "pos")
    sizes = task.sizes()
    assert sizes == {"train": 45, "dev": 5}
    again = get_task(str(tmp_path / "data.csv"), seed=1).splits()["dev"]
    assert again == task.splits()["dev"]  # the seed fixes the split
    assert task.spec.random_guess() == 0.5


def test_folder_with_pairs_and_custom_fields(tmp_path: Path) -> None:
    for split in ("train", "dev", "test"):
        write_jsonl(
            tmp_path / f"{split}.jsonl",
            [{"a": "x", "b": "y", "y": "same"}, {"a": "p", "b": "q", "y": "different"}],
        )
    task = get_task(str(tmp_path), text_field="a", text_pair_field="b", label_field="y")
    assert task.spec.pair
    assert task.splits()["test"][0] == {"text": "x", "text_pair": "y", "label": 1}


def test_tsv_with_quoted_newline(tmp_path: Path) -> None:
    path = tmp_path / "train.tsv"
    rows = '"two\nlines"\ta\nok\tb\nyes\ta\nno\tb\n'  # two classes, each twice
    path.write_text("text\tlabel\n" + rows, encoding="utf-8")
    task = get_task(str(path))
    examples = task.splits()["train"] + task.splits()["dev"]
    assert sorted(e["text"] for e in examples) == ["no", "ok", "two\nlines", "yes"]


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="not found"):
        get_task(str(tmp_path / "nope.csv"))


def test_missing_column_names_the_columns(tmp_path: Path) -> None:
    (tmp_path / "d.csv").write_text("sentence,label\nhi,a\n", encoding="utf-8")
    with pytest.raises(UserError, match=r"no column 'text'.*columns are: sentence, label"):
        get_task(str(tmp_path / "d.csv"))


def test_empty_file(tmp_path: Path) -> None:
    (tmp_path / "d.jsonl").write_text("\n \n", encoding="utf-8")
    with pytest.raises(UserError, match="is empty"):
        get_task(str(tmp_path / "d.jsonl"))
    (tmp_path / "h.csv").write_text("text,label\n", encoding="utf-8")
    with pytest.raises(UserError, match="header but no rows"):
        get_task(str(tmp_path / "h.csv"))


def test_dev_label_not_in_train(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "train.jsonl", [{"text": "a", "label": "x"}])
    write_jsonl(tmp_path / "dev.jsonl", [{"text": "b", "label": "x"}, {"text": "c", "label": "z"}])
    with pytest.raises(UserError, match=r"dev.jsonl line 2: label 'z' never appears in train"):
        get_task(str(tmp_path))


def test_undecodable_text_names_offset_and_encoding(tmp_path: Path) -> None:
    (tmp_path / "d.csv").write_bytes("text,label\ncaf\xe9,a\n".encode("latin-1"))
    with pytest.raises(UserError, match=r"d.csv: byte 0xe9 at offset 14 \(line 2\).*latin-1"):
        get_task(str(tmp_path / "d.csv"))
    assert get_task(str(tmp_path / "d.csv"), encoding="latin-1").spec.labels == ("a",)


def test_bad_json_line(tmp_path: Path) -> None:
    (tmp_path / "d.jsonl").write_text('{"text": "a", "label": "x"}\n{oops\n', encoding="utf-8")
    with pytest.raises(UserError, match="line 2: not valid JSON"):
        get_task(str(tmp_path / "d.jsonl"))


def test_folder_without_train(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "dev.jsonl", [{"text": "a", "label": "x"}])
    with pytest.raises(UserError, match="no train file"):
        get_task(str(tmp_path))


def test_unknown_name() -> None:
    with pytest.raises(UserError, match="unknown task 'nonesuch'"):
        get_task("nonesuch")


def test_an_empty_label_cell_is_named_not_made_a_class(tmp_path: Path) -> None:
    (tmp_path / "d.csv").write_text("text,label\na,1\nb,0\nc,\n", encoding="utf-8")
    with pytest.raises(UserError, match=r"d.csv line 4: the 'label' cell is empty"):
        get_task(str(tmp_path / "d.csv")).splits()


def test_a_header_naming_a_column_twice_is_refused(tmp_path: Path) -> None:
    (tmp_path / "d.csv").write_text("text,label,label\na,1,0\nb,0,1\n", encoding="utf-8")
    with pytest.raises(UserError, match="names column 'label' twice"):
        get_task(str(tmp_path / "d.csv")).splits()
    # empty names (a spreadsheet's trailing commas) are no column
    rows = "".join(f"t{i},{i % 2},,\n" for i in range(20))
    (tmp_path / "e.csv").write_text("text,label,,\n" + rows, encoding="utf-8")
    assert len(get_task(str(tmp_path / "e.csv")).splits()["train"]) >= 1


def test_a_folder_with_two_train_files_is_refused(tmp_path: Path) -> None:
    (tmp_path / "train.csv").write_text("text,label\na,1\nb,0\n", encoding="utf-8")
    write_jsonl(tmp_path / "train.jsonl", [{"text": "a", "label": "1"}])
    with pytest.raises(UserError, match=r"several train files \(train.csv, train.jsonl\)"):
        get_task(str(tmp_path)).splits()


def test_a_data_dir_that_is_not_a_folder_or_given_with_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "d.csv").write_text("text,label\na,1\nb,0\n", encoding="utf-8")
    with pytest.raises(UserError, match="is not a folder"):
        get_task("sst2", data_dir=tmp_path / "nowhere")
    with pytest.raises(UserError, match="applies to the study's hub tasks"):
        get_task(str(tmp_path / "d.csv"), data_dir=tmp_path)

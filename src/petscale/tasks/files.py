"""The user's own data: CSV, TSV or JSONL files, or a folder of train/dev/test files."""

from __future__ import annotations

import csv
import io
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path

from petscale.errors import UserError
from petscale.tasks.base import Example, Task, TaskSpec
from petscale.tasks.build import carve_dev, index_labels, label_word, sorted_labels

SUFFIXES = (".csv", ".tsv", ".jsonl", ".json")
SPLIT_NAMES = {"train": ("train",), "dev": ("dev", "validation", "valid"), "test": ("test",)}
#: The most characters one example may take: a JSON line, or a CSV/TSV row with all its cells.
#: A model reads a few thousand tokens at most; a longer example is a broken file, and would
#: only cost memory and tokenizing time.
MAX_EXAMPLE_CHARS = 1_000_000


@dataclass
class Table:
    path: Path
    columns: list[str]
    rows: list[dict]
    lines: list[int]  # the line each row starts on, for error messages

    def require(self, *columns: str) -> None:
        for column in columns:
            if column not in self.columns:
                raise UserError(
                    f"{self.path}: no column {column!r}; its columns are: "
                    f"{', '.join(self.columns) or '(none)'}"
                )

    def where(self, i: int) -> str:
        return f"{self.path} line {self.lines[i]}"


def _decode(path: Path, encoding: str) -> str:
    data = path.read_bytes()
    try:
        # utf-8-sig also drops the byte-order mark that spreadsheet programs write.
        return data.decode("utf-8-sig" if encoding.lower() in ("utf-8", "utf8") else encoding)
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise UserError(
            f"{path}: byte 0x{data[error.start]:02x} at offset {error.start} (line {line}) is not "
            f"valid {encoding}; give the file's encoding (e.g. --encoding latin-1 or cp1252) "
            "or re-save it as UTF-8"
        ) from None
    except LookupError:
        raise UserError(f"unknown text encoding {encoding!r}") from None


def read_table(path: Path, encoding: str = "utf-8") -> Table:
    """Rows of a CSV, TSV or JSONL file (a .json file holds one JSON object per line too)."""
    if not path.is_file():
        raise UserError(f"data file not found: {path}")
    if path.suffix.lower() not in SUFFIXES:
        raise UserError(f"{path}: unsupported file type; use one of {', '.join(SUFFIXES)}")
    text = _decode(path, encoding)
    if not text.strip():
        raise UserError(f"{path} is empty")
    if path.suffix.lower() in (".jsonl", ".json"):
        table = _read_jsonl(path, text)
    else:
        table = _read_delimited(path, text, "\t" if path.suffix.lower() == ".tsv" else ",")
    if not table.rows:
        raise UserError(f"{path} has a header but no rows")
    return table


def _read_jsonl(path: Path, text: str) -> Table:
    rows, lines, columns = [], [], {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        _check_length(f"{path} line {number}", len(line))
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            raise UserError(f"{path} line {number}: not valid JSON ({error.msg})") from None
        if not isinstance(row, dict):
            raise UserError(f"{path} line {number}: expected a JSON object per line")
        rows.append(row)
        lines.append(number)
        columns.update(dict.fromkeys(row))
    return Table(path, list(columns), rows, lines)


def _read_delimited(path: Path, text: str, delimiter: str) -> Table:
    csv.field_size_limit(sys.maxsize)  # long documents (news, dialogues) exceed the default
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter)
    header = list(reader.fieldnames or [])
    repeated = sorted({name for name in header if name and header.count(name) > 1})
    if repeated:  # csv would keep the last column of a name, silently
        raise UserError(f"{path}: the header names column {repeated[0]!r} twice; rename one")
    rows, lines = [], []
    start = 2  # the first data line, after the header
    for row in reader:
        _check_length(f"{path} line {start}", sum(map(_cell_length, row.values())))
        rows.append(row)
        lines.append(start)
        start = reader.line_num + 1
    return Table(path, list(reader.fieldnames or []), rows, lines)


def _cell_length(value: object) -> int:
    """A CSV cell's characters (cells past the header's come as one list)."""
    if isinstance(value, list):
        return sum(map(_cell_length, value))
    return len(value) if isinstance(value, str) else 0


def _check_length(where: str, length: int) -> None:
    if length > MAX_EXAMPLE_CHARS:
        raise UserError(
            f"{where}: one example of {length:,} characters, over petscale's limit of "
            f"{MAX_EXAMPLE_CHARS:,}; shorten it or split it into several examples (a model "
            "reads only its first few thousand tokens)"
        )


def find_split_files(folder: Path) -> dict[str, Path]:
    """train/dev/test files in ``folder`` (dev may be named validation)."""
    found: dict[str, Path] = {}
    for split, stems in SPLIT_NAMES.items():
        files = [
            folder / f"{s}{x}" for s in stems for x in SUFFIXES if (folder / f"{s}{x}").is_file()
        ]
        if len(files) > 1:
            names = ", ".join(p.name for p in files)
            raise UserError(f"{folder}: several {split} files ({names}); keep one of them")
        if files:
            found[split] = files[0]
    if "train" not in found:
        raise UserError(
            f"{folder}: no train file; expected train.csv, train.tsv or train.jsonl "
            "(and optionally dev.* and test.*)"
        )
    return found


def file_task(
    path: str | Path,
    text_field: str = "text",
    text_pair_field: str | None = None,
    label_field: str = "label",
    seed: int = 0,
    encoding: str = "utf-8",
) -> Task:
    """A classification task from the user's files; labels are the sorted train label strings."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"data file or folder not found: {path}")
    files = find_split_files(path) if path.is_dir() else {"train": path}
    fields = (text_field, text_pair_field) if text_pair_field else (text_field,)
    rows: dict[str, list[tuple[str, Example, str]]] = {}
    for split, file in files.items():
        table = read_table(file, encoding)
        table.require(*fields, label_field)
        rows[split] = [_row(table, i, fields, label_field) for i in range(len(table.rows))]
    if "dev" not in rows:
        rows["train"], rows["dev"] = carve_dev(rows["train"], seed)
    labels = sorted_labels(name for name, _, _ in rows["train"])
    splits = index_labels(rows, labels)
    spec = TaskSpec(
        name=str(path),
        type="custom",
        kind="classification",
        labels=labels,
        label_words=tuple(label_word(name) for name in labels),
        metrics=("accuracy", "macro_f1"),
        pair=text_pair_field is not None,
        input_fields=fields,
        description=f"the user's data in {path}",
        source=str(path) + ("" if "dev" in files else f" (dev: seeded 10% of train, seed {seed})"),
    )
    return Task(spec=spec, loader=lambda: splits)


def _row(
    table: Table, i: int, fields: tuple[str, ...], label_field: str
) -> tuple[str, Example, str]:
    row = table.rows[i]
    for column in (*fields, label_field):
        value = row.get(column)
        if value is None:
            raise UserError(f"{table.where(i)}: no value for column {column!r}")
        # a JSON line may hold anything: an object, a list or NaN is no text and no label
        if isinstance(value, dict | list) or (
            isinstance(value, float) and not math.isfinite(value)
        ):
            raise UserError(
                f"{table.where(i)}: the {column!r} value is {json.dumps(value)[:40]}, not text; "
                "give a string (or a number, for a label)"
            )
    label = str(row[label_field]).strip()
    if not label:  # an empty cell would become a class of its own
        raise UserError(
            f"{table.where(i)}: the {label_field!r} cell is empty; give every row a label"
        )
    example: Example = {"text": str(row[fields[0]])}
    if len(fields) > 1:
        example["text_pair"] = str(row[fields[1]])
    return label, example, table.where(i)

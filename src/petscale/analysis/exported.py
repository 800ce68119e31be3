"""A table written by ``petscale study export`` (CSV or Parquet) read back as the analyses' table.

``load_table(path)`` gives the same frame as ``load_results(folder)`` gives for the study the
table came from: a row per done trial (see ``table.COLUMNS``). A hand-written table works too;
it needs the ``MINIMAL`` columns and, for each row, its trainable parameters
(``trainable_params``, or ``options.budget`` for a budgeted method).
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from petscale.analysis.table import from_records
from petscale.errors import UserError
from petscale.methods import Budget, pattern_of
from petscale.settings import CONFIG_KEYS, WHEN_SET, kind
from petscale.study.store import STORE_NAME

#: Columns every table needs (and one of ``BUDGET_COLUMNS``).
MINIMAL = ("model", "task", "method", "seed", "dev_score")
BUDGET_COLUMNS = ("trainable_params", "options.budget", "budget")
#: File name endings read, and the format each means.
SUFFIXES = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
MAX_TABLE_BYTES = 512 << 20  # larger is no study table: refused before it is read
STATUSES = ("done", "failed", "running", "pending")

_CONFIG_KEYS = (*CONFIG_KEYS, *WHEN_SET)
# Cells read as text whatever they look like (a model may well be named "7").
_TEXT = {
    "id",
    "status",
    "metric",
    "host",
    "error",
    "started_at",
    "finished_at",
    "structure",
    "pattern",
    "task_type",
    *(key for key in _CONFIG_KEYS if key != "options" and kind(key) is str),
}
# Cells that must be numbers where they are not empty.
_NUMBERS = {
    "dev_score",
    "test_score",
    "random_guess",
    "seconds",
    "budget",
    "trainable_params",
    "head_params",
    "total_params",
    *(key for key in _CONFIG_KEYS if key != "options" and kind(key) in (int, float)),
}
_WHOLE = {"seed", *(key for key in _CONFIG_KEYS if key != "options" and kind(key) is int)}
_HOW = "export one with `petscale study export DIR --format csv` (see docs/STUDY.md)"


@dataclass
class Exported:
    """What a report takes from the table besides the results."""

    results: pd.DataFrame
    counts: dict[str, int]  # done, failed, running, pending, total: over every row
    hosts: list[str] = field(default_factory=list)
    configs: list[dict[str, Any]] = field(default_factory=list)  # of the done trials


def load_table(path: str | Path) -> pd.DataFrame:
    """The done trials of the exported table at ``path``, as ``from_records`` builds them."""
    return read_table(path).results


def read_table(path: str | Path) -> Exported:
    """The table at ``path`` with its trial counts, hosts and the done trials' configs.

    Bad input (unreadable, neither CSV nor Parquet, a minimal column missing, a score that is
    no number, no done trial) is a ``UserError`` saying what is wrong and how to fix it.
    """
    path = Path(path)
    columns, rows = _read(path)
    missing = [c for c in MINIMAL if c not in columns]
    if not any(c in columns for c in BUDGET_COLUMNS):
        missing.append("trainable_params (or options.budget)")
    if missing:
        raise UserError(
            f"{path} lacks the column(s) {', '.join(missing)}; a table needs "
            f"{', '.join(MINIMAL)} and trainable_params (or options.budget): {_HOW}"
        )
    statuses = [_text(row.get("status")) for row in rows]
    if "status" in columns:
        counts = {s: statuses.count(s) for s in STATUSES}
        done = [(n, rows[n - 1]) for n, s in enumerate(statuses, 1) if s == "done"]
    else:  # a table of results only: every row is a done trial
        counts = {s: 0 for s in STATUSES} | {"done": len(rows)}
        done = list(enumerate(rows, 1))
    if not done:
        raise UserError(
            f"{path} holds no done trial ({len(rows)} rows); report a table whose status column "
            "says done for some rows, once its study has finished trials"
        )
    records = [_record(path, n, row) for n, row in done]
    _check_ids(path, [(n, r.get("trial_id")) for (n, _), r in zip(done, records, strict=True)])
    # An empty cell is a setting the trial did not set.
    configs = [{key: r[key] for key in _CONFIG_KEYS if r.get(key) is not None} for r in records]
    hosts = sorted({r["host"] for r in records if r.get("host")})
    return Exported(
        results=from_records(records),
        counts={**counts, "total": len(rows)},
        hosts=hosts,
        configs=configs,
    )


def is_table(path: str | Path) -> bool:
    """Whether ``petscale report`` should read ``path`` as an exported table, not a study.

    A file is a table (a wrong one is refused with a reason); a folder is a study, unless it
    is named like a table and holds no store (it is then refused as a table).
    """
    path = Path(path)
    named = path.suffix.lower() in SUFFIXES
    if path.is_dir():
        return named and not (path / STORE_NAME).exists()
    return path.exists() or path.is_symlink() or named


def _read(path: Path) -> tuple[list[str], list[dict[str, Any]]]:
    """The column names and the rows (a dict per row) of the file at ``path``."""
    if path.is_dir():
        raise UserError(
            f"{path} is a folder, not an exported table; give the .csv or .parquet file that "
            "`petscale study export` wrote, or a study folder (it holds study.sqlite)"
        )
    if not path.exists():
        raise UserError(
            f"no such file: {path}; give a study folder or a table from `petscale study export`"
        )
    if not path.is_file():
        raise UserError(f"{path} is not a regular file; give a .csv or .parquet table")
    fmt = SUFFIXES.get(path.suffix.lower())
    if fmt is None:
        raise UserError(
            f"{path} is neither a study folder nor a .csv or .parquet table; give one of those "
            "(`petscale study export DIR --format csv|parquet` writes a table)"
        )
    size = path.stat().st_size
    if size > MAX_TABLE_BYTES:
        raise UserError(
            f"{path} is {size / 2**20:,.0f} MiB, over the {MAX_TABLE_BYTES >> 20} MiB a table may "
            "be; report the study folder instead, or export fewer trials"
        )
    if size == 0:
        raise UserError(f"{path} is empty; {_HOW}")
    try:
        columns, rows = _read_csv(path) if fmt == "csv" else _read_parquet(path)
    except OSError as e:
        raise UserError(f"cannot read {path}: {e.strerror or e}") from None
    duplicated = sorted({c for c in columns if columns.count(c) > 1})
    if duplicated:
        raise UserError(
            f"{path} has the column(s) {', '.join(duplicated)} more than once; keep one of each"
        )
    return columns, rows


def _read_csv(path: Path) -> tuple[list[str], list[dict[str, Any]]]:
    not_csv = (
        f"{path} is not a CSV table (not UTF-8 text with a header line); "
        "give the file `petscale study export DIR --format csv` wrote"
    )
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:  # -sig: a spreadsheet's BOM
            lines = _csv_rows(path, csv.reader(f))
            header = next(lines, None)
            if header is None or not any(cell.strip() for cell in header):
                raise UserError(f"{path} has no header line; {_HOW}")
            if any("\x00" in cell for cell in header):
                raise UserError(not_csv)
            header = [cell.strip() for cell in header]
            rows = []
            for n, cells in enumerate(lines, 1):
                if not any(cell.strip() for cell in cells):
                    continue  # a blank line
                extra = cells[len(header) :]
                if any(cell.strip() for cell in extra):
                    raise UserError(
                        f"{path}: row {n} has {len(cells)} cells but the header names "
                        f"{len(header)}; quote cells that hold commas"
                    )
                cells = [*cells[: len(header)], *[""] * (len(header) - len(cells))]
                rows.append({name: cell for name, cell in zip(header, cells, strict=True) if name})
    except UnicodeDecodeError:
        raise UserError(not_csv) from None
    return [name for name in header if name], rows


def _csv_rows(path: Path, reader: Iterator[list[str]]) -> Iterator[list[str]]:
    try:
        yield from reader
    except csv.Error as e:
        raise UserError(f"{path} is not a readable CSV table ({e}); {_HOW}") from None


def _read_parquet(path: Path) -> tuple[list[str], list[dict[str, Any]]]:
    with path.open("rb") as f:
        magic = f.read(4)
    if magic != b"PAR1":
        raise UserError(
            f"{path} is not a Parquet file; give the file `petscale study export DIR --format "
            "parquet` wrote (or a .csv table)"
        )
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise UserError(
            "reading a Parquet table needs pyarrow: pip install pyarrow (or export as CSV)"
        ) from None
    try:
        table = pq.read_table(path)
    except (pa.ArrowException, ValueError) as e:
        raise UserError(f"{path} is not a readable Parquet table ({e}); {_HOW}") from None
    return list(table.column_names), table.to_pylist()


def _record(path: Path, n: int, row: dict[str, Any]) -> dict[str, Any]:
    """One done row as the record ``from_records`` takes (``n``: its row number, from 1)."""
    where = f"{path}: row {n}"
    record: dict[str, Any] = {}
    options: dict[str, Any] = {}
    for column, raw in row.items():
        value = _empty_to_none(raw)
        if column.startswith("options."):
            if value is not None:
                options[column.removeprefix("options.")] = _option(value)
        elif column == "id":
            record["trial_id"] = _text(value)
        elif column == "curve":
            record["curve"] = _curve(where, value)
        elif column == "default_budget":
            record["default_budget"] = _flag(where, value)
        elif column in _TEXT:
            record[column] = _text(value)
        elif column in _NUMBERS:
            record[column] = _number(where, column, value)
        else:  # a column this reader does not know: a number where it reads as one
            number = _parse_number(value)
            record[column] = value if number is None else number
    for column in ("model", "task", "method"):
        if not record.get(column):
            raise UserError(f"{where}: {column} is empty; every done trial needs one")
    score = record["dev_score"]
    if score is None or not math.isfinite(score):
        shown = "empty" if score is None else score
        raise UserError(f"{where}: dev_score is {shown}; a done trial needs a finite dev score")
    record["options"] = options
    pattern = pattern_of(record["method"], options, default=False)
    if pattern is not None:
        record["pattern"] = str(pattern)
    if record.get("default_budget") is None:
        # No budget and no match option: the method ran at its own default size.
        record["default_budget"] = Budget.of(options).is_default
    if record.get("budget") is None and record.get("trainable_params") is None:
        budget = options.get("budget")
        if isinstance(budget, bool) or not isinstance(budget, (int, float)):
            raise UserError(
                f"{where}: no trainable_params (and no options.budget); give the trial's "
                "trainable parameter count"
            )
        record["budget"] = budget
    return record


def _check_ids(path: Path, ids: list[tuple[int, str | None]]) -> None:
    seen: dict[str, int] = {}
    for n, tid in ids:
        if tid is None:
            continue
        if tid in seen:
            raise UserError(
                f"{path}: row {n} repeats the id {tid!r} of row {seen[tid]}; a table holds each "
                "trial once"
            )
        seen[tid] = n


def _empty_to_none(value: Any) -> Any:
    if isinstance(value, str):
        value = value.strip()
        return value or None
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _text(value: Any) -> str | None:
    value = _empty_to_none(value)
    return None if value is None else str(value)


def _parse_number(value: Any) -> int | float | None:
    """``value`` as an int or float; None where it is no number (or empty)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return value
    if not isinstance(value, str):
        return None
    try:
        return int(value)
    except ValueError:
        pass
    try:
        return float(value)
    except ValueError:
        return None


def _number(where: str, column: str, value: Any) -> int | float | None:
    if value is None:
        return None
    number = _parse_number(value)
    if number is None:
        shown = str(value) if len(str(value)) <= 40 else f"{str(value)[:40]}..."
        raise UserError(
            f"{where}: {column} is {shown!r}, not a number; scores and counts must be numbers "
            "(leave a cell empty where there is none)"
        )
    if column in _WHOLE:
        if isinstance(number, float) and not number.is_integer():
            raise UserError(f"{where}: {column} is {number}, not a whole number")
        number = int(number)
    return number


def _option(value: Any) -> Any:
    """A method option's cell: a number, true/false, a JSON list or map, or the text as is."""
    if not isinstance(value, str):
        return value
    number = _parse_number(value)
    if number is not None:
        return number
    if value.lower() in ("true", "false"):
        return value.lower() == "true"
    if value[:1] in "[{":  # a list or map option, written as JSON by the export
        try:
            return json.loads(value)
        except (ValueError, RecursionError):
            return value
    return value


def _flag(where: str, value: Any) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    text = str(value).lower()
    if text in ("true", "1", "yes"):
        return True
    if text in ("false", "0", "no"):
        return False
    raise UserError(f"{where}: default_budget is {value!r}; write true or false")


def _curve(where: str, value: Any) -> list[list[float]]:
    """The dev curve: a JSON list of [step, dev_score] pairs (empty cell: no curve)."""
    if value is None:
        return []
    bad = UserError(
        f"{where}: curve is not a JSON list of [step, dev_score] pairs; fix the cell or leave it "
        "empty"
    )
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except (ValueError, RecursionError):
            raise bad from None
    if not isinstance(value, list):
        raise bad
    points = []
    for point in value:
        if (
            not isinstance(point, (list, tuple))
            or len(point) != 2
            or any(isinstance(x, bool) or not isinstance(x, (int, float)) for x in point)
        ):
            raise bad
        points.append(list(point))
    return points

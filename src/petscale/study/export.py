"""Export the store as one table: a row per trial, config flattened, results beside it."""

from __future__ import annotations

import csv
import json
import os
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from petscale.errors import UserError
from petscale.folders import current_umask
from petscale.results import COLUMNS as RESULT_COLUMNS
from petscale.results import EVALUATION_KEYS
from petscale.settings import CONFIG_KEYS, WHEN_SET
from petscale.study.store import SPEC_NAME, STORE_NAME, Store

FORMATS = ("csv", "parquet")
_MAPS = ("options", "task_options")
# The store's own result columns, with the bookkeeping a reader of the table wants around them.
_RESULT_KEYS = (
    "status",
    *RESULT_COLUMNS,
    "attempts",
    "host",
    "started_at",
    "finished_at",
    "error",
)


def table(folder: str | Path, only: set[str] | None = None) -> list[dict[str, Any]]:
    """The trials of the study at ``folder`` (those whose id is in ``only``, if given); every
    row has the same columns.

    Method options become ``options.<name>`` columns (empty where a method lacks one), task
    options ``task_options.<name>`` columns, and the curve is a JSON list of [step, dev_score]
    pairs.
    """
    with Store.existing(folder) as store:
        records = [r for r in store.rows() if only is None or r["id"] in only]
    # the maps of a config (method and task options) become a column per name
    names = {key: sorted({n for r in records for n in r["config"].get(key) or {}}) for key in _MAPS}
    rows = []
    for r in records:
        config = r["config"]
        row: dict[str, Any] = {"id": r["id"]}
        for key in (*CONFIG_KEYS, *WHEN_SET):
            if key in _MAPS:
                given = config.get(key) or {}
                row.update({f"{key}.{n}": _scalar(given.get(n)) for n in names[key]})
            else:
                row[key] = config.get(key)
        row.update({key: r[key] for key in _RESULT_KEYS})
        result = json.loads(r["result"] or "{}")
        row.update({key: result.get(key) for key in EVALUATION_KEYS})
        for key in ("started_at", "finished_at"):
            row[key] = _iso(row[key])
        row["curve"] = json.dumps(r["curve"])
        rows.append(row)
    return rows


def export(
    folder: str | Path, fmt: str, out: str | Path | None = None, only: set[str] | None = None
) -> Path:
    """Write the table (the trials in ``only``, if given) to ``out`` (default
    ``DIR/trials.<fmt>``); returns the path written."""
    if fmt not in FORMATS:
        raise UserError(f"unknown export format {fmt!r}; use one of {', '.join(FORMATS)}")
    rows = table(folder, only)
    path = Path(out) if out else Path(folder) / f"trials.{fmt}"
    _check_out(path, Path(folder), fmt)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Written beside, then renamed: a failed export leaves an earlier one whole.
        handle, staging = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        os.close(handle)
        os.chmod(staging, 0o666 & ~current_umask())  # as open() would: not mkstemp's 0o600
        try:
            if fmt == "csv":
                with open(staging, "w", newline="") as f:
                    writer = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ["id"])
                    writer.writeheader()
                    writer.writerows(rows)
            else:
                _write_parquet(rows, Path(staging))
            os.replace(staging, path)
        finally:
            Path(staging).unlink(missing_ok=True)
    except OSError as e:
        raise UserError(
            f"cannot write {path}: {e.strerror or e}; give --out a writable path"
        ) from None
    return path


def _check_out(path: Path, folder: Path, fmt: str) -> None:
    """Refuse an ``--out`` that would replace the study's own files or a file no export wrote."""
    if path.is_dir():
        raise UserError(
            f"--out {path} is a folder; give a file path, e.g. {path / f'trials.{fmt}'}"
        )
    # SQLite's side files come and go with its connections: refused whether or not they exist
    # now (an export written as the -wal file is deleted by the next access to the store).
    names = ("", "-wal", "-shm", "-journal")
    own = [*(folder / f"{STORE_NAME}{n}" for n in names), folder / SPEC_NAME]
    if any(_same_file(path, p) for p in own):
        raise UserError(
            f"--out {path} is one of the study's own files (its store, the store's -wal, -shm "
            f"or -journal file, or its spec); give another file, e.g. {folder / f'trials.{fmt}'}"
        )
    if path.exists() and not _earlier_export(path, fmt):
        raise UserError(
            f"--out {path} exists and is not an earlier {fmt} export of a study; give a new "
            "path, or move that file away"
        )


def _same_file(path: Path, other: Path) -> bool:
    """Whether ``path`` names ``other``: the same path once links are followed, or the same
    file under another name (a hard link)."""
    if path.resolve() == other.resolve():
        return True
    try:
        return os.path.samefile(path, other)
    except OSError:  # either does not exist
        return False


def _earlier_export(path: Path, fmt: str) -> bool:
    """Whether ``path`` looks like what ``export`` writes: a CSV whose header starts with
    ``id`` and holds the ``status`` and ``curve`` columns (or is ``id`` alone: a study with no
    trials), or a Parquet file."""
    if not path.is_file() or path.is_symlink():
        return False
    with path.open("rb") as f:
        head = f.read(1 << 16)
    if fmt == "parquet":
        return head[:4] == b"PAR1"
    header = next(csv.reader([head.decode("utf-8", "replace").split("\n", 1)[0]]), [])
    columns = {c.strip() for c in header}
    return header == ["id"] or (header[:1] == ["id"] and {"status", "curve"} <= columns)


def _write_parquet(rows: list[dict[str, Any]], path: Path) -> None:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise UserError("parquet export needs pyarrow: pip install pyarrow") from None
    # Option values may mix types across methods (e.g. "adjacent" and 3): store those as text.
    columns = {}
    for name in rows[0] if rows else ["id"]:
        values = [row[name] for row in rows]
        kinds = {type(v) for v in values if v is not None}
        if kinds - {int, float} and len(kinds) > 1:
            values = [None if v is None else str(v) for v in values]
        columns[name] = values
    pq.write_table(pa.table(columns), path)


def _iso(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, timezone.utc).isoformat(timespec="seconds")


def _scalar(value: Any) -> Any:
    # A list or map option (e.g. target modules) becomes JSON text: one cell, both formats.
    return json.dumps(value) if isinstance(value, (list, dict)) else value

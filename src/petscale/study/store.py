"""The results store: one SQLite file (WAL) per study folder, one row per trial.

A trial goes pending -> running -> done | failed. A runner claims a trial in one
``BEGIN IMMEDIATE`` transaction, so two runners never get the same one; it writes a finished
trial and its curve in one transaction, so a crash loses at most the trials in flight. A
running row names its owner (host, pid, token) and carries a heartbeat: rows of a dead owner
(same host, pid gone) or with a heartbeat older than the lease go back to pending.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import tempfile
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from petscale.errors import UserError
from petscale.folders import alive
from petscale.ids import TRIAL_ID_PATTERN, trial_id
from petscale.results import COLUMNS
from petscale.study.integrity import STATUSES, TAMPERED, checked_row, config_problem

STORE_NAME = "study.sqlite"
SPEC_NAME = "spec.yaml"  # the spec last run into the folder
TRIALS_DIR = "trials"  # DIR/trials/<trial id>/: a kept trial's run folder (delta + head)
LEASE_S = 120.0  # a running row whose heartbeat is older than this is taken to be dead

_SCHEMA_TEMPLATE = """
CREATE TABLE IF NOT EXISTS trials (
    id TEXT PRIMARY KEY,
    config TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'running', 'done', 'failed')),
    error TEXT,
    traceback TEXT,
{result_columns}
    result TEXT,
    owner TEXT,
    host TEXT,
    pid INTEGER,
    heartbeat REAL,
    started_at REAL,
    finished_at REAL,
    attempts INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS trials_status ON trials (status);
CREATE TABLE IF NOT EXISTS curve (
    trial_id TEXT NOT NULL REFERENCES trials (id),
    step INTEGER NOT NULL,
    score REAL,
    PRIMARY KEY (trial_id, step)
);
"""
# The result's own columns (``petscale.results``); the whole result is kept as JSON too.
_SCHEMA = _SCHEMA_TEMPLATE.replace(
    "{result_columns}", "\n".join(f"    {name} {kind}," for name, kind in COLUMNS.items())
)


@dataclass(frozen=True)
class Owner:
    """Who runs a trial: the driver process that claimed it."""

    host: str = field(default_factory=socket.gethostname)
    pid: int = field(default_factory=os.getpid)
    token: str = field(default_factory=lambda: uuid.uuid4().hex[:8])

    def __str__(self) -> str:
        return f"{self.host}:{self.pid}:{self.token}"


class Store:
    """A connection to ``DIR/study.sqlite``; use one per thread or process."""

    def __init__(self, folder: str | Path, lease_s: float = LEASE_S, create: bool = True) -> None:
        """``create=False`` (readers: status, export, report) only reads: an empty or foreign
        SQLite file is refused, never given petscale's tables."""
        self.folder = Path(folder)
        self.path = self.folder / STORE_NAME
        self.lease_s = lease_s
        if create:
            make_folder(self.folder)
        try:
            # Autocommit mode: every transaction below is opened explicitly.
            self.db = sqlite3.connect(self.path, timeout=60.0, isolation_level=None)
        except sqlite3.DatabaseError as e:
            raise UserError(f"cannot open the study store {self.path}: {e}") from None
        try:
            self.db.row_factory = sqlite3.Row
            if create:
                self.db.execute("PRAGMA journal_mode=WAL")
                self.db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL survives a crash
                self.db.executescript(_SCHEMA)
            else:
                self._check_tables()
            self.db.execute(
                "CREATE TEMP TABLE IF NOT EXISTS wanted (id TEXT PRIMARY KEY, ord INTEGER NOT NULL)"
            )
        except sqlite3.DatabaseError as e:
            self.db.close()
            raise UserError(
                f"{self.path} is not a readable study store ({e}); restore it from a copy "
                "or move it away and rerun the study"
            ) from None

    @classmethod
    def existing(cls, folder: str | Path) -> Store:
        """Open the store of a study that has been run, to read; a UserError if there is none."""
        path = Path(folder) / STORE_NAME
        if not path.is_file():
            raise UserError(f"no study store at {path}; run `petscale study run SPEC` first")
        return cls(folder, create=False)

    def _check_tables(self) -> None:
        found = {name for (name,) in self.db.execute("SELECT name FROM sqlite_master")}
        if not {"trials", "curve"} <= found:
            self.db.close()
            raise UserError(
                f"{self.path} is not a petscale study store (no trials table); pass a study "
                "folder, one `petscale study run` wrote"
            )

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def queue(self, configs: Iterable[Mapping[str, Any]]) -> list[str]:
        """Add the trials not yet stored, take back those of dead runners, and make them this
        connection's work list, in order."""
        now = time.time()
        rows = [(trial_id(c), json.dumps(c, sort_keys=True), now) for c in configs]
        with self._transaction():
            # Here, not only in claim: a run with nothing pending must still see them.
            self._reclaim(Owner(), now)
            self.db.executemany(
                "INSERT OR IGNORE INTO trials (id, config, created_at) VALUES (?, ?, ?)", rows
            )
            self.db.execute("DELETE FROM temp.wanted")
            self.db.executemany(
                "INSERT OR IGNORE INTO temp.wanted (id, ord) VALUES (?, ?)",
                [(row[0], i) for i, row in enumerate(rows)],
            )
        return [row[0] for row in rows]

    def retry_failed(self) -> int:
        """Put the failed trials of the work list back to pending; returns how many."""
        with self._transaction():
            cursor = self.db.execute(
                "UPDATE trials SET status = 'pending' WHERE status = 'failed'"
                " AND id IN (SELECT id FROM temp.wanted)"
            )
        return cursor.rowcount

    def claim(self, owner: Owner) -> tuple[str, dict[str, Any]] | None:
        """Atomically take the next pending trial of the work list, or None when none is left.

        A stored config that no longer hashes to its id (the file was edited) is never run: it
        is marked failed with the reason, and the next trial is taken.
        """
        now = time.time()
        with self._transaction():
            self._reclaim(owner, now)
            while True:
                row = self.db.execute(
                    "SELECT t.id, t.config FROM trials t JOIN temp.wanted w ON w.id = t.id"
                    " WHERE t.status = 'pending' ORDER BY w.ord LIMIT 1"
                ).fetchone()
                if row is None:
                    return None
                if config_problem(row["config"], row["id"]) is None:
                    config = json.loads(row["config"])
                    break
                self.db.execute(
                    "UPDATE trials SET status = 'failed', error = ?, traceback = '',"
                    " finished_at = ? WHERE id = ?",
                    (TAMPERED, now, row["id"]),
                )
            self.db.execute(
                "UPDATE trials SET status = 'running', owner = ?, host = ?, pid = ?,"
                " heartbeat = ?, started_at = ?, finished_at = NULL, attempts = attempts + 1"
                " WHERE id = ? AND status = 'pending'",
                (str(owner), owner.host, owner.pid, now, now, row["id"]),
            )
        return row["id"], config

    def heartbeat(self, owner: Owner) -> None:
        """Renew the lease on every trial this owner runs."""
        self.db.execute(
            "UPDATE trials SET heartbeat = ? WHERE owner = ? AND status = 'running'",
            (time.time(), str(owner)),
        )

    def finish(self, tid: str, result: Mapping[str, Any]) -> bool:
        """Record a completed trial and its curve together; False if it was already done."""
        values = [_column(key, result.get(key)) for key in COLUMNS]
        curve = [(tid, int(step), _float(score)) for step, score in result.get("curve") or []]
        with self._transaction():
            cursor = self.db.execute(
                "UPDATE trials SET status = 'done', error = NULL, traceback = NULL,"
                + "".join(f" {key} = ?," for key in COLUMNS)
                + " result = ?, finished_at = ? WHERE id = ? AND status != 'done'",
                (*values, json.dumps(result, default=str), time.time(), tid),
            )
            if cursor.rowcount == 0:
                return False
            self.db.execute("DELETE FROM curve WHERE trial_id = ?", (tid,))
            self.db.executemany("INSERT INTO curve VALUES (?, ?, ?)", curve)
        return True

    def fail(self, tid: str, owner: Owner, error: str, traceback: str) -> None:
        """Record a failed trial, unless another owner has taken it over meanwhile."""
        self.db.execute(
            "UPDATE trials SET status = 'failed', error = ?, traceback = ?, finished_at = ?"
            " WHERE id = ? AND status = 'running' AND owner = ?",
            (error, traceback, time.time(), tid, str(owner)),
        )

    def release(self, owner: Owner) -> None:
        """Put this owner's running trials back to pending (on an orderly stop)."""
        self.db.execute(
            "UPDATE trials SET status = 'pending', owner = NULL"
            " WHERE owner = ? AND status = 'running'",
            (str(owner),),
        )

    def counts(self, wanted_only: bool = False) -> dict[str, int]:
        """Trials per status, over the whole store or only the work list."""
        where = " WHERE id IN (SELECT id FROM temp.wanted)" if wanted_only else ""
        rows = self.db.execute(f"SELECT status, COUNT(*) FROM trials{where} GROUP BY status")
        return {status: 0 for status in STATUSES} | {s: n for s, n in rows}

    def summary(self) -> dict[str, Any]:
        """Counts, time spent, and an estimate of the time left (see ``petscale study status``);
        a damaged row is a UserError, as for every other reader."""
        counts = self.counts()
        rows = list(self.rows())
        seconds = [r["seconds"] for r in rows if r["status"] == "done"]
        spent = float(sum(seconds))
        mean = spent / len(seconds) if seconds else None
        stalled = sum(r["status"] == "running" and self._orphaned(r) for r in rows)
        left = counts["pending"] + counts["running"]
        # Trials run side by side as many at a time as are running now (a dead runner's: none).
        parallel = max(1, counts["running"] - stalled)
        return {
            **counts,
            "stalled": stalled,  # running rows whose runner is gone: the next run takes them
            "total": sum(counts.values()),
            "seconds_spent": spent,
            "mean_trial_seconds": mean,
            "estimated_seconds_left": None if mean is None else mean * left / parallel,
        }

    def _orphaned(self, row: Mapping[str, Any]) -> bool:
        """A running row whose runner is gone: its heartbeat past the lease, or its process
        dead on this host."""
        if (row["heartbeat"] or 0) < time.time() - self.lease_s:
            return True
        return row["host"] == socket.gethostname() and not alive(row["pid"])

    def rows(self) -> Iterator[dict[str, Any]]:
        """Every trial with its config and curve decoded, in the order they were added; a row
        someone damaged is a UserError (``integrity.checked_row``)."""
        curves: dict[str, list[list[Any]]] = {}
        for tid, step, score in self.db.execute("SELECT * FROM curve ORDER BY trial_id, step"):
            curves.setdefault(tid, []).append([step, score])
        for row in self.db.execute("SELECT * FROM trials ORDER BY created_at, rowid"):
            record = dict(row)
            checked = checked_row(record, curves.get(record["id"], []), str(self.path))
            if checked is not None:
                yield checked

    def _reclaim(self, owner: Owner, now: float) -> None:
        self.db.execute(
            "UPDATE trials SET status = 'pending', owner = NULL"
            " WHERE status = 'running' AND heartbeat < ?",
            (now - self.lease_s,),
        )
        pids = self.db.execute(
            "SELECT DISTINCT pid FROM trials WHERE status = 'running' AND host = ? AND pid != ?",
            (owner.host, owner.pid),
        )
        for (pid,) in pids.fetchall():
            if not alive(pid):
                self.db.execute(
                    "UPDATE trials SET status = 'pending', owner = NULL"
                    " WHERE status = 'running' AND host = ? AND pid = ?",
                    (owner.host, pid),
                )

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        # IMMEDIATE takes the write lock up front, so two runners' claims serialise.
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")


def make_folder(folder: Path) -> Path:
    """The study folder, made if new; a file or an unwritable place is a UserError."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(
            f"cannot use {folder} as a study folder: {e.strerror}; "
            "give --out a folder (new or a study's)"
        ) from None
    return folder


def keep_spec(spec: str | Path, folder: str | Path) -> None:
    """Keep a copy of the spec last run into ``folder`` as ``spec.yaml`` (reports show it); a
    folder of other files is refused, not made a study."""
    folder = Path(folder)
    own = (folder / STORE_NAME).exists() or (folder / SPEC_NAME).exists()
    if folder.is_dir() and any(folder.iterdir()) and not own:
        raise UserError(
            f"{folder} holds files that are not a study's; give --out a new folder or a study's"
        )
    target = make_folder(folder) / SPEC_NAME
    # A fresh staging file (never one a folder someone handed over could have planted a link at).
    handle, staging = tempfile.mkstemp(prefix=f".{SPEC_NAME}.", dir=target.parent)
    with os.fdopen(handle, "wb") as out:
        out.write(Path(spec).read_bytes())
    os.replace(staging, target)


def trial_folder(folder: str | Path, tid: str) -> Path:
    """Where a study keeps the run folder (trained delta and head) of trial ``tid``.

    The id comes from the store, which a study folder someone hands over may have edited: only
    a trial id (16 hex digits) names a folder, and never through a link, so nothing outside
    ``trials/`` is read as a trial's.
    """
    if not isinstance(tid, str) or not TRIAL_ID_PATTERN.fullmatch(tid):
        raise UserError(
            f"{folder}: the store names a trial {tid!r}, which is not a trial id (16 hex "
            "digits); the study's store was edited or damaged, rerun the study into a new folder"
        )
    path = Path(folder) / TRIALS_DIR / tid
    if path.is_symlink():
        raise UserError(f"{path} is a link; a study keeps its trials' folders inside it")
    return path


def _column(key: str, value: Any) -> str | int | float | None:
    # Plain Python types: sqlite3 cannot bind numpy or torch scalars.
    if value is None:
        return None
    kind = COLUMNS[key]
    if kind == "TEXT":
        return str(value)
    return int(value) if kind == "INTEGER" else float(value)


def _float(value: Any) -> float | None:
    return None if value is None else float(value)

"""Folders written whole: built in a hidden staging sibling, then renamed into place.

``swap_in`` replaces an earlier folder only once the new one is complete: the earlier one is
renamed aside first, the new one renamed in, then the earlier one removed. A crash between the
two renames leaves the earlier folder aside; ``recover`` puts it back (and drops leftovers), so
every reader and writer calls it first.

Nothing is removed that petscale cannot tell it made: a leftover of ``swap_in`` is a folder
``.NAME.earlier.*`` of this user's holding nothing but the folder ``run`` (removed only by a
writer, once the swap finished; a reader only puts an earlier run back), and a staging folder
(``staging``) carries its maker's process id and host in its name, so a later write to the
same parent removes it only once that process is gone (``clean_stale``).
"""

from __future__ import annotations

import errno
import glob
import hashlib
import os
import re
import shutil
import socket
import stat
import tempfile
import warnings
from pathlib import Path

from petscale.errors import UserError

_EARLIER = "earlier"


def swap_in(staging: Path, out: Path) -> None:
    """Rename ``staging`` to ``out``; an earlier run there is moved aside first, then removed."""
    if not out.exists():
        os.rename(staging, out)
        return
    earlier = Path(tempfile.mkdtemp(prefix=f".{out.name}.{_EARLIER}.", dir=out.parent))
    os.rename(out, earlier / "run")
    os.rename(staging, out)
    shutil.rmtree(earlier, ignore_errors=True)


def recover(out: Path, reading: bool = False) -> None:
    """Put back the earlier run a crash inside ``swap_in`` left aside, and drop leftovers.

    Only leftovers of swap_in's own shape are touched (``_leftover``). A reader
    (``reading=True``) never deletes: it puts an earlier run back and removes the folder that
    held it once empty; a writer also removes the earlier run of a swap that finished."""
    if not out.parent.is_dir():
        return
    pattern = f".{glob.escape(out.name)}.{_EARLIER}.*"
    # Only folders swap_in made: a planted link would move (and later delete) what it points at.
    leftovers = sorted(
        (p for p in out.parent.glob(pattern) if _leftover(p)),
        key=lambda p: p.lstat().st_mtime,
    )
    if not leftovers:
        return
    if not out.exists() and any(leftovers[-1].iterdir()):
        aside = leftovers[-1] / "run"
        try:
            os.rename(aside, out)
        except OSError as err:
            raise UserError(
                f"{out} was being replaced when a run stopped; the earlier run is in {aside} "
                f"and could not be moved back ({err.strerror or err}): move it to {out}"
            ) from err
        warnings.warn(
            f"put back the earlier run {out}, left aside by an interrupted write", stacklevel=2
        )
    for leftover in leftovers:
        if not any(leftover.iterdir()):
            leftover.rmdir()
        elif not reading:
            shutil.rmtree(leftover, ignore_errors=True)


def _leftover(path: Path) -> bool:
    """A folder ``swap_in`` left: this user's real folder holding nothing but the real folder
    ``run`` (the earlier run), or nothing at all (once it was put back)."""
    if not _own_folder(path):
        return False
    try:
        entries = [entry.name for entry in os.scandir(path)]
    except OSError:
        return False
    return entries == [] or (entries == ["run"] and _own_folder(path / "run"))


#: A staging folder's name: ``.NAME.staging-PID-HOST.RANDOM`` (``tempfile.mkdtemp``'s random
#: part is 8 characters).
_STAGING = re.compile(r"\..+\.staging-(?P<pid>[0-9]+)-(?P<host>[0-9a-f]{8})\.[a-z0-9_]{8}")


def _host() -> str:
    """This machine, as a staging folder's name records it (a parent may be shared)."""
    return hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]


def new_staging(out: Path) -> Path:
    """A new hidden staging folder beside ``out``, named after this process and host, after
    removing the stale ones of processes that are gone (``clean_stale``)."""
    clean_stale(out.parent)
    prefix = f".{out.name}.staging-{os.getpid()}-{_host()}."
    return Path(tempfile.mkdtemp(prefix=prefix, dir=out.parent))


def set_aside(staging: Path) -> Path:
    """A staging folder kept for the user (its swap failed), renamed so that no later write
    takes it for a stale one; where it is now."""
    kept = staging.with_name(staging.name.replace(".staging-", ".kept-", 1))
    try:
        os.rename(staging, kept)
    except OSError:
        return staging
    return kept


def clean_stale(parent: Path) -> list[Path]:
    """Remove the staging folders in ``parent`` that a petscale process of this user on this
    machine made and left when it was killed (its process is gone); never anything else."""
    removed = []
    try:
        entries = list(os.scandir(parent))
    except OSError:
        return removed
    for entry in entries:
        found = _STAGING.fullmatch(entry.name)
        path = Path(entry.path)
        if found is None or found["host"] != _host() or not _own_folder(path):
            continue
        if alive(int(found["pid"])):
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed


def alive(pid: int) -> bool:
    """Whether a process ``pid`` runs here (another user's counts: it cannot be told apart)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True
    return True


def _own_folder(path: Path) -> bool:
    """A real folder (not a link) of this user's."""
    try:
        info = path.lstat()
    except OSError:
        return False
    return stat.S_ISDIR(info.st_mode) and info.st_uid == os.getuid()


def current_umask() -> int:
    """The process's umask (read by setting it and back: there is no getter)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def os_error_of(err: Exception) -> OSError:
    """The OSError inside a writer's own error for a failed write (safetensors says ``...
    (os error 28)``), so that a full disk reads as one."""
    found = re.search(r"os error (\d+)", str(err))
    code = int(found.group(1)) if found else errno.EIO
    return OSError(code, os.strerror(code) if found else str(err))

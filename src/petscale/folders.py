"""Folders written whole: built in a hidden staging sibling, then renamed into place.

``swap_in`` replaces an earlier folder only once the new one is complete: the earlier one is
renamed aside first, the new one renamed in, then the earlier one removed. A crash between the
two renames leaves the earlier folder aside; ``recover`` puts it back (and drops leftovers), so
every reader and writer calls it first.
"""

from __future__ import annotations

import glob
import os
import shutil
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


def recover(out: Path) -> None:
    """Put back the earlier run a crash inside ``swap_in`` left aside, and drop leftovers."""
    if not out.parent.is_dir():
        return
    pattern = f".{glob.escape(out.name)}.{_EARLIER}.*"
    # Only folders swap_in made: a planted link would move (and later delete) what it points at.
    leftovers = sorted(
        (p for p in out.parent.glob(pattern) if _own_folder(p)),
        key=lambda p: p.lstat().st_mtime,
    )
    if not leftovers:
        return
    if not out.exists() and _own_folder(leftovers[-1] / "run"):
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
        shutil.rmtree(leftover, ignore_errors=True)


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

"""Plain tables for listings: every cell whole (a name is never cut), columns padded to fit.

Plain text, so piped output greps and copies as it reads (``petscale tasks | grep banking77``);
a terminal narrower than a row wraps it instead of shortening a name.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TextIO

from petscale.formatting import printable


def print_table(
    headers: Sequence[str], rows: Sequence[Sequence[str]], file: TextIO | None = None
) -> None:
    """Print ``rows`` under ``headers``, left-aligned, two spaces between columns; control
    characters in a cell are shown, not sent to the terminal."""
    shown = [[printable(str(cell)) for cell in line] for line in (headers, *rows)]
    widths = [max(len(cell) for cell in column) for column in zip(*shown, strict=True)]
    for line in shown:
        cells = [cell.ljust(width) for cell, width in zip(line, widths, strict=True)]
        print("  ".join(cells).rstrip(), file=file or sys.stdout)

"""Numbers as people read them, shared by the CLI and the report."""

from __future__ import annotations


def duration(seconds: float | None) -> str:
    """``1h 02m 03s`` or ``2m 03s``; ``?`` when unknown."""
    if seconds is None:
        return "?"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m {secs:02d}s" if hours else f"{minutes}m {secs:02d}s"

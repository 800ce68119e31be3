"""Numbers as people read them, shared by the CLI and the report."""

from __future__ import annotations


def duration(seconds: float | None) -> str:
    """``1h 02m 03s`` or ``2m 03s``; ``?`` when unknown."""
    if seconds is None:
        return "?"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m {secs:02d}s" if hours else f"{minutes}m {secs:02d}s"


def literal(text: str) -> str:
    """``text`` for a rich console, shown as written: its brackets are not markup and its
    control characters (a terminal's escape sequences) are shown as ``\\xNN``, not obeyed."""
    from rich.markup import escape

    shown = "".join(ch if ch.isprintable() or ch in "\n\t" else f"\\x{ord(ch):02x}" for ch in text)
    return escape(shown)

"""Numbers as people read them, shared by the CLI and the report."""

from __future__ import annotations


def duration(seconds: float | None) -> str:
    """``1h 02m 03s`` or ``2m 03s``; ``?`` when unknown."""
    if seconds is None:
        return "?"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m {secs:02d}s" if hours else f"{minutes}m {secs:02d}s"


def printable(text: str) -> str:
    """``text`` with its control characters (a terminal's escape sequences) shown as ``\\xNN``,
    not obeyed; newlines and tabs kept."""
    return "".join(ch if ch.isprintable() or ch in "\n\t" else f"\\x{ord(ch):02x}" for ch in text)


def literal(text: str) -> str:
    """``text`` for a rich console, shown as written: ``printable``, and its brackets are not
    markup."""
    from rich.markup import escape

    return escape(printable(text))

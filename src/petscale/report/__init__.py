"""``petscale report``: a study's analyses as one self-contained HTML page, figures and CSVs."""

from petscale.report.build import Report, gather, write

__all__ = ["Report", "gather", "write"]

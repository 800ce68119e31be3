"""How a finding's verdict follows from its effect's interval.

Every finding states an effect (a slope per decade of model size, a spread in decades, a
difference in steps ...), its 95% bootstrap interval and the number of cases behind it, and a
claim that the effect lies beyond an edge: below it (``side="below"``: e.g. a slope below
-0.5 points per decade) or above it. The edge is the claim's side of an equivalence band
around "no effect", so that an effect too small to matter does not count for the claim.

* ``holds``: the whole interval lies beyond the edge, on the claim's side;
* ``does not hold``: the whole interval lies on the other side of the edge (no effect of the
  claimed size: inside the band, or the opposite way);
* ``inconclusive``: the interval straddles the edge, or is unknown, or there are fewer cases
  than the finding's minimum, or fewer than two seeds per cell (one seed's interval leaves the
  seed-to-seed spread out);
* ``not tested``: the study has no case at all.

A tie is a tie: an effect inside the band never counts for the claim.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

VERDICTS = ("holds", "does not hold", "inconclusive", "not tested")


@dataclass(frozen=True)
class Rule:
    side: str  # "below" or "above": where the claim puts the effect
    edge: float  # the claim's edge, in the effect's unit
    min_cases: int = 1
    #: one seed's interval has no seed-to-seed spread in it (``bootstrap``): too narrow to judge
    min_seeds: int = 2

    def describe(self, unit: str) -> str:
        where = "below" if self.side == "below" else "above"
        return (
            f"holds when the 95% interval lies {where} {self.edge:+g} {unit}; does not hold "
            f"when it lies wholly on the other side; inconclusive otherwise, with fewer "
            f"than {self.min_cases} case(s) or with fewer than {self.min_seeds} seeds per cell"
        )


def judge(rule: Rule, ci_low: float, ci_high: float, n: int, n_seeds: int = 2) -> str:
    """The verdict of an effect whose interval is (ci_low, ci_high), over ``n`` cases whose
    cells have at least ``n_seeds`` seeds."""
    if n == 0:
        return "not tested"
    if n < rule.min_cases or n_seeds < rule.min_seeds or math.isnan(ci_low) or math.isnan(ci_high):
        return "inconclusive"
    if rule.side == "below":
        if ci_high < rule.edge:
            return "holds"
        return "does not hold" if ci_low >= rule.edge else "inconclusive"
    if ci_low > rule.edge:
        return "holds"
    return "does not hold" if ci_high <= rule.edge else "inconclusive"

"""Run numbers far above the others: a directory named ``9223372036854775807`` beside runs
1–5000 is a typo or a test, not the next run, and must not become ``--incremental``'s mark (every
later run would sit below it and never be archived).

The rule: from the highest run down, a run more than ``max_jump`` above the next lower run is
*far above the rest* and left out of the mark; the next one down is then looked at the same way.
A genuine jump in numbering (a new run period starting at 100000) is reported for its first run
only: once a second run follows it, the two are close together and count as the rest.
"""

from dataclasses import dataclass
from typing import Iterable, Optional

DEFAULT_MAX_JUMP = 100_000


@dataclass(frozen=True)
class HighWaterMark:
    """The highest run that is not far above the rest (None: no runs), and the runs that are
    (ascending), each with the next lower run it was compared with."""

    mark: Optional[int]
    far_above: tuple = ()  # ((run, next lower run), ...)

    @property
    def far_runs(self) -> list:
        return [run for run, _ in self.far_above]

    def describe(self, max_jump: int) -> list:
        """One sentence per far-above run, for logs and reports."""
        return [f"run {run} is far above the other runs (next lower run {lower}, more than "
                f"{max_jump} below it): check that run directory; it does not move the "
                f"incremental mark" for run, lower in self.far_above]


def high_water_mark(runs: Iterable[int], max_jump: int = DEFAULT_MAX_JUMP) -> HighWaterMark:
    """The mark of ``runs`` and the runs far above the rest (module docstring)."""
    ordered = sorted(set(int(r) for r in runs))
    far: list = []
    while len(ordered) >= 2 and ordered[-1] - ordered[-2] > max_jump:
        far.append((ordered[-1], ordered[-2]))
        ordered.pop()
    return HighWaterMark(mark=ordered[-1] if ordered else None, far_above=tuple(reversed(far)))

"""Run numbers far above the others do not become the incremental mark."""

import pytest

from archiver_resources.run_numbers import high_water_mark

ABSURD = 9223372036854775807


@pytest.mark.parametrize("runs, mark, far", [
    ([], None, []),
    ([5], 5, []),
    (list(range(1, 101)), 100, []),
    (list(range(1, 101)) + [ABSURD], 100, [ABSURD]),
    (list(range(1, 101)) + [5_000_000_000, ABSURD], 100, [5_000_000_000, ABSURD]),
    ([1, 2, 100_003], 100_003, []),           # exactly the jump: still the rest
    ([1, 2, 100_004], 2, [100_004]),          # one more: far above
    ([10, 500_000], 10, [500_000]),            # a new run period's first run is reported...
    ([10, 500_000, 500_001], 500_001, []),     # ...and counts once a second run follows it
    ([ABSURD], ABSURD, []),                    # nothing to compare with
])
def test_high_water_mark(runs, mark, far):
    found = high_water_mark(runs, 100_001)
    assert found.mark == mark and found.far_runs == far


def test_describe_names_the_run_and_its_neighbour():
    found = high_water_mark([1, 2, 3, ABSURD], 1000)
    assert found.far_above == ((ABSURD, 3),)
    assert found.describe(1000) == [
        f"run {ABSURD} is far above the other runs (next lower run 3, more than 1000 below "
        "it): check that run directory; it does not move the incremental mark"]

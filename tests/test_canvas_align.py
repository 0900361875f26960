"""Point-in-time window alignment against a brute-force reference."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from canvas.align import place, split_bounds, step_edges, window_cutoffs

EDGES = step_edges("2020-01-01", "2020-12-31", "1mo")
DAY = np.timedelta64(1, "D")


def reference(field, observed, known, edges, T, per_step=1):
    """For every (window, slot, field): the best row known by the window's cutoff."""
    step = np.searchsorted(edges, observed, side="right") - 1
    out = {}
    for n, cutoff in enumerate(window_cutoffs(edges, T, per_step)):
        e = n // per_step + T - 1
        for j in range(T):
            b = e - T + 1 + j
            for f in set(field.tolist()):
                rows = [
                    r
                    for r in range(len(field))
                    if field[r] == f and step[r] == b and known[r] <= cutoff
                ]
                if rows:
                    out[(n, j, f)] = max(rows, key=lambda r: (observed[r], known[r]))
    return out


observations = st.lists(
    st.tuples(st.integers(0, 2), st.integers(-20, 380), st.integers(0, 120)),
    min_size=0,
    max_size=40,
)


@settings(max_examples=150, deadline=None)
@given(observations, st.integers(2, 5), st.integers(1, 4))
def test_placements_match_brute_force(rows, T, per_step):
    field = np.array([r[0] for r in rows], dtype=np.int64)
    observed = np.datetime64("2020-01-01", "us") + np.array([r[1] for r in rows]) * DAY
    known = observed + np.array([r[2] for r in rows]) * DAY
    p = place(field, observed, known, EDGES, T, per_step)
    got = {
        (int(n), int(j), int(f)): int(r)
        for n, j, f, r in zip(p.window, p.slot, p.field, p.row, strict=True)
    }
    expected = reference(field, observed, known, EDGES, T, per_step)
    # ties between identical (observed, known) rows may pick either; compare the timestamps
    assert got.keys() == expected.keys()
    for key, r in got.items():
        e = expected[key]
        assert (observed[r], known[r]) == (observed[e], known[e])


def test_no_value_known_after_the_cutoff_reaches_a_window():
    rng = np.random.default_rng(0)
    n = 5000
    field = rng.integers(0, 20, n)
    observed = np.datetime64("2020-01-01", "us") + rng.integers(0, 366, n) * DAY
    known = observed + rng.integers(0, 90, n) * DAY
    T = 4
    p = place(field, observed, known, EDGES, T)
    cutoff = EDGES[p.window + T]  # window n ends at step n+T-1; cutoff is the next edge
    assert (known[p.row] <= cutoff).all()
    step = np.searchsorted(EDGES, observed[p.row], side="right") - 1
    assert (step == p.window + p.slot).all()


def test_a_revision_replaces_the_first_release_only_from_its_release_on():
    observed = np.array(["2020-02-01", "2020-02-01"], dtype="datetime64[us]")
    known = np.array(["2020-03-10", "2020-05-20"], dtype="datetime64[us]")
    p = place(np.zeros(2, dtype=np.int64), observed, known, EDGES, T=4)
    by_window = {int(n): int(r) for n, r in zip(p.window, p.row, strict=True)}
    # window 0 covers Jan-Apr (cutoff May 1): the first release; window 1 covers Feb-May
    # (cutoff Jun 1): the revision of May 20; February leaves the windows after that.
    assert by_window == {0: 0, 1: 1}
    slots = {int(n): int(j) for n, j in zip(p.window, p.slot, strict=True)}
    assert slots == {0: 1, 1: 0}


def test_quarterly_values_are_not_forward_filled():
    observed = np.array(["2020-01-01", "2020-04-01"], dtype="datetime64[us]")
    known = observed + 30 * DAY
    p = place(np.zeros(2, dtype=np.int64), observed, known, EDGES, T=12)
    assert sorted(p.slot.tolist()) == [0, 3]  # January and April only, nothing between


def test_cutoffs_inside_a_step_are_evenly_spaced_and_the_last_is_its_end():
    edges = step_edges("2021-02-01", "2021-03-31", "1mo")  # February, March
    cutoffs = window_cutoffs(edges, T=1, per_step=4)
    assert cutoffs.astype("datetime64[D]").astype(str).tolist() == [
        "2021-02-08",
        "2021-02-15",
        "2021-02-22",
        "2021-03-01",  # 28 days / 4
        "2021-03-08",
        "2021-03-16",
        "2021-03-24",
        "2021-04-01",  # 31 days / 4, floored
    ]
    assert (window_cutoffs(edges, T=1, per_step=1) == edges[1:]).all()


def test_a_window_inside_a_step_sees_the_release_only_from_its_cutoff_on():
    # CPI for February released on March 10. T=3: March's four windows (0-3, cutoffs
    # Mar 8, 16, 24, Apr 1) cover January to March; the first does not hold it, the
    # other three do at slot 1; April's (4-7, February to April) hold it at slot 0
    observed = np.array(["2020-02-01"], dtype="datetime64[us]")
    known = np.array(["2020-03-10"], dtype="datetime64[us]")
    p = place(np.zeros(1, dtype=np.int64), observed, known, EDGES, T=3, per_step=4)
    assert dict(zip(p.window.tolist(), p.slot.tolist(), strict=True)) == {
        1: 1,
        2: 1,
        3: 1,
        4: 0,
        5: 0,
        6: 0,
        7: 0,
    }


def test_splits_cut_inside_a_step_at_the_window_cutoffs():
    cutoffs = window_cutoffs(EDGES, 3, per_step=2)
    train_end = cutoffs[5].astype("datetime64[us]").item()
    bounds = split_bounds(EDGES, 3, train_end, train_end, per_step=2)
    assert bounds["train"] == (0, 6)
    assert (cutoffs[: bounds["train"][1]] <= cutoffs[5]).all()
    assert bounds["test"] == (6, len(cutoffs))

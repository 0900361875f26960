"""Point-in-time alignment of long-format observations into canvas windows.

The time axis is a grid of steps (edges[b] <= t < edges[b+1]). A window ending at step
e covers steps e-T+1 .. e and sees only what was known by its cutoff: the end of step
e, edges[e+1]. With `per_step` = k > 1 each end step has k windows, cut at k evenly
spaced moments inside it (the last at its end): the ragged edge as it stood during the
step, not only at its close. For each field and step a window holds the best
observation known by its cutoff: the latest observation in the step, in its latest
vintage known by then. Nothing is forward-filled: a step without an observation known
by the cutoff is absent.

Windows are numbered in cutoff order, n = (e - T + 1) * k + c for the c-th moment of
end step e. Everything is NumPy over whole arrays. `place` lists every (window, slot,
field) an observation vintage lands in, O(rows x T x k); `settle` gives per step and field
the row every window holding the step ends up with and the cutoff from which it does,
O(rows + steps x fields), so that windows can be copied from it (the windows that hold a
step before its last release are the only ones that need `place`).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import polars as pl

from warehouse.clock import as_timestamp

# where training ends and validation ends when a split is not given, as fractions of
# the windows (the materializer) or of the data's date range (the curricula)
DEFAULT_SPLIT = (0.7, 0.85)


def step_edges(
    start: dt.datetime | dt.date | str, end: dt.datetime | dt.date | str, step: str
) -> np.ndarray:
    """Step boundaries (datetime64[us]) covering [start, end]: S steps, S+1 edges."""
    bounds = pl.Series([as_timestamp(start), as_timestamp(end)]).dt.truncate(step)
    first, last = bounds[0], bounds[1]
    edges = pl.datetime_range(first, last, step, eager=True, time_unit="us")
    after = edges.tail(1).dt.offset_by(step)
    return pl.concat([edges, after]).to_numpy().astype("datetime64[us]")


@dataclass(frozen=True)
class Placements:
    """Where each visible observation lands: window n, time slot j, field f, source row."""

    window: np.ndarray
    slot: np.ndarray
    field: np.ndarray
    row: np.ndarray

    def __len__(self) -> int:
        return len(self.window)

    def where(self, keep: np.ndarray) -> Placements:
        """The placements where `keep` is true."""
        return Placements(self.window[keep], self.slot[keep], self.field[keep], self.row[keep])


def step_cutoffs(edges: np.ndarray, per_step: int = 1) -> np.ndarray:
    """(S x per_step,) cutoffs: per_step evenly spaced moments in each step, the last at
    its end (per_step=1: edges[1:])."""
    if per_step < 1:
        raise ValueError(f"cutoffs per step must be at least 1, got {per_step}")
    us = edges.astype("datetime64[us]").view(np.int64)
    span = (us[1:] - us[:-1])[:, None]
    cut = us[:-1, None] + span * np.arange(1, per_step + 1) // per_step
    return cut.reshape(-1).view("datetime64[us]")


def window_cutoffs(edges: np.ndarray, T: int, per_step: int = 1) -> np.ndarray:
    """(N,) each window's cutoff, in window order."""
    return step_cutoffs(edges, per_step)[(T - 1) * per_step :]


def _releases(
    observed_at: np.ndarray, known_at: np.ndarray, edges: np.ndarray, per_step: int
) -> tuple[np.ndarray, np.ndarray]:
    """Each row's step and release cutoff: in cutoff units u = e x per_step + c over every
    step, the first cutoff at or after its known_at."""
    step = _search(edges, observed_at, "right") - 1
    return step, _search(step_cutoffs(edges, per_step), known_at, "left")


def _search(grid: np.ndarray, values: np.ndarray, side: str) -> np.ndarray:
    """np.searchsorted of datetimes in a sorted grid; by arithmetic on an even grid."""
    ticks = grid.astype("datetime64[us]").view(np.int64)
    spacing = ticks[1:] - ticks[:-1]
    if len(ticks) < 2 or (spacing != spacing[0]).any():
        return np.searchsorted(grid, values, side=side)
    index = values.astype("datetime64[us]").view(np.int64) - ticks[0]
    # right: the grid points <= value; left: those < value
    if side == "right":
        index //= spacing[0]
        index += 1
    else:
        np.negative(index, out=index)
        index //= spacing[0]
        np.negative(index, out=index)
    return np.clip(index, 0, len(ticks), out=index)


def place(
    field_index: np.ndarray,
    observed_at: np.ndarray,
    known_at: np.ndarray,
    edges: np.ndarray,
    T: int,
    per_step: int = 1,
) -> Placements:
    """Point-in-time placements of observation vintages into windows.

    `field_index`, `observed_at`, `known_at` are per-row arrays (datetime64[us]);
    windows are numbered n = (e - T + 1) x per_step + c for end steps e = T-1 .. S-1
    and their cutoffs c (see `window_cutoffs`).
    """
    n_steps, m = len(edges) - 1, per_step
    observed_at = observed_at.astype("datetime64[us]")
    known_at = known_at.astype("datetime64[us]")
    step, first_end = _releases(observed_at, known_at, edges, m)
    keep = (step >= 0) & (step < n_steps) & (first_end < n_steps * m)
    rows = np.flatnonzero(keep)
    if len(rows) == 0:
        empty = np.zeros(0, dtype=np.int64)
        return Placements(empty, empty, empty, empty)
    f, b, k = field_index[rows].astype(np.int64), step[rows], first_end[rows]
    obs, known = observed_at[rows].view(np.int64), known_at[rows].view(np.int64)

    # Within each (field, step): order by release window k; priority = (observed, known).
    order = np.lexsort((known, obs, k, b, f))
    f, b, k, rows = f[order], b[order], k[order], rows[order]
    group_start = np.r_[True, (f[1:] != f[:-1]) | (b[1:] != b[:-1])]
    group_id = np.cumsum(group_start) - 1
    # priority rank of each row inside its group (by observed_at, then known_at)
    prio_order = np.lexsort((known[order], obs[order], group_id))
    rank = np.empty_like(prio_order)
    rank[prio_order] = np.arange(len(prio_order))
    # best row so far in release order: cumulative max of (group, rank) per group
    key = group_id * len(rank) + rank
    best_key = np.maximum.accumulate(key)
    best_pos = prio_order[best_key - group_id * len(rank)]

    # one change point per (group, k): the last row of each run of equal k
    last_of_k = np.r_[(group_id[1:] != group_id[:-1]) | (k[1:] != k[:-1]), True]
    cp = np.flatnonzero(last_of_k)
    cp_group, cp_k, cp_b, cp_f = group_id[cp], k[cp], b[cp], f[cp]
    cp_row = rows[best_pos[cp]]
    next_k = np.r_[cp_k[1:], np.iinfo(np.int64).max]
    next_k[np.r_[cp_group[1:] != cp_group[:-1], True]] = np.iinfo(np.int64).max
    # cutoffs from the release (and the step's own) to the last window that holds step b
    lo = np.maximum(np.maximum(cp_k, cp_b * m), (T - 1) * m)
    hi = np.minimum(np.minimum(next_k - 1, (cp_b + T) * m - 1), n_steps * m - 1)
    valid = lo <= hi
    lo, hi, cp_b, cp_f, cp_row = lo[valid], hi[valid], cp_b[valid], cp_f[valid], cp_row[valid]

    # expand each change point over its windows; int32 halves the memory traffic
    lengths = hi - lo + 1
    rep = np.repeat(np.arange(len(lo), dtype=np.int32), lengths)
    starts = (np.cumsum(lengths) - lengths).astype(np.int32)
    u = np.arange(lengths.sum(), dtype=np.int32)
    u += lo.astype(np.int32)[rep] - starts[rep]
    # step b sits at slot b - first step, the first step being u // m - (T - 1)
    slot = cp_b.astype(np.int32)[rep] - u // m + (T - 1)
    u -= (T - 1) * m
    return Placements(window=u, slot=slot, field=cp_f.astype(np.int32)[rep], row=cp_row[rep])


def is_sorted(*keys: np.ndarray, strict: bool = False) -> bool:
    """Whether the rows are in ascending order of `keys`, the first the most significant
    (`strict`: and no two rows tie on every key)."""
    ahead = np.zeros(max(len(keys[0]) - 1, 0), dtype=bool)
    tied = np.ones_like(ahead)
    for key in keys:
        ahead |= tied & (key[1:] > key[:-1])
        tied &= key[1:] == key[:-1]
    return bool(ahead.all() if strict else (ahead | tied).all())


def run_ends(*keys: np.ndarray) -> np.ndarray:
    """Mask of the last row of each run of rows with equal `keys`."""
    change = np.zeros(max(len(keys[0]) - 1, 0), dtype=bool)
    for key in keys:
        change |= key[1:] != key[:-1]
    return np.append(change, True)[: len(keys[0])]


@dataclass(frozen=True)
class Settled:
    """Per step b and field f (S x F arrays): the row the windows holding the step end up with.

    A window with cutoff u (window n: u = n + (T - 1) x per_step) holds row[b, f] at step b
    when u >= since[b, f] (nothing where row is -1). A window cut before `since` holds
    nothing there, or an earlier row when the step's rows are among `earlier`.
    """

    row: np.ndarray  # int64 source row, -1 where no window ever holds one
    since: np.ndarray  # int32 cutoff from which the windows hold `row`; -1 where row is -1
    earlier: np.ndarray  # source rows of the steps some window sees before their `row`


def settle(
    field_index: np.ndarray,
    observed_at: np.ndarray,
    known_at: np.ndarray,
    edges: np.ndarray,
    T: int,
    n_fields: int,
    per_step: int = 1,
) -> Settled:
    """The row each (step, field) settles on, as `place` puts it in the last window holding
    the step, and the cutoff from which every window holds it.

    Arguments as in `place`, with `n_fields` fields; rows may come in any order, and of rows
    with equal (field, observed_at, known_at) the later one wins, as in `place`.
    """
    n_steps, m = len(edges) - 1, per_step
    observed_at = observed_at.astype("datetime64[us]", copy=False)
    known_at = known_at.astype("datetime64[us]", copy=False)
    step, release = _releases(observed_at, known_at, edges, m)
    # a row is seen from its release to the cutoff of the last window holding its step
    seen = (step >= 0) & (step < n_steps) & (release < np.minimum(step + T, n_steps) * m)
    rows, f, b, k = np.arange(len(seen)), field_index.astype(np.int64, copy=False), step, release
    observed, known = observed_at, known_at
    if not seen.all():
        rows = np.flatnonzero(seen)
        f, b, k, observed, known = f[rows], b[rows], k[rows], observed[rows], known[rows]
    if not is_sorted(f, observed, known):
        # priority inside each (field, step): observed_at, then known_at
        order = np.lexsort((known, observed, f))
        rows, f, b, k = rows[order], f[order], b[order], k[order]
    group = f * n_steps + b
    ends = np.flatnonzero(run_ends(group))
    # filled field by field, as the rows come; handed out step by step (transposed)
    row = np.full(n_fields * n_steps, -1, dtype=np.int64)
    since = np.full(n_fields * n_steps, -1, dtype=np.int32)
    # the best row by the last window's cutoff is the group's last: it holds from its release
    cells = group[ends]
    row[cells] = rows[ends]
    since[cells] = k[ends]
    earlier = rows[:0]
    if len(ends) < len(rows):  # a step with several rows: windows before `since` may see one
        starts = np.r_[0, ends[:-1] + 1]
        first = np.minimum.reduceat(k, starts)
        opens = np.maximum(np.maximum(first, b[ends] * m), (T - 1) * m)
        earlier = rows[np.repeat(opens < k[ends], ends - starts + 1)]
    shape = (n_fields, n_steps)
    return Settled(row.reshape(shape).T, since.reshape(shape).T, earlier)


def split_bounds(
    edges: np.ndarray,
    T: int,
    train_end: dt.datetime | None,
    val_end: dt.datetime | None,
    per_step: int = 1,
) -> dict[str, tuple[int, int]]:
    """[first, end) window ranges of train / val / test by each window's cutoff.

    A window belongs to train when everything it can see was known by `train_end`
    (its cutoff <= train_end), so no training window looks past it.
    """
    cutoffs = window_cutoffs(edges, T, per_step)
    n = len(cutoffs)
    train_cut, val_cut = (
        int(np.searchsorted(cutoffs, np.datetime64(t, "us"), side="right")) if t else n
        for t in (train_end, val_end)
    )
    return {
        "train": (0, train_cut),
        "val": (train_cut, max(train_cut, val_cut)),
        "test": (max(train_cut, val_cut), n),
    }

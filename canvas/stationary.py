"""Stationary fields: each field's declared transform on the canvas, its statistics, its inverse.

A field is modelled as its schema declares (`warehouse.schema.Transform`): ``level`` as
observed, ``log``, ``diff`` (the change since the field's previous observation) or
``logdiff`` (the log change since then). On the canvas the previous observation is the
latest earlier step of the same window that holds the field, as known at the window's
cutoff, so a transformed value never mixes knowledge from two moments. A step whose
value cannot be transformed (the first observation of a window, a logarithm of a value
<= 0) is absent.

What users see is inverted back to the field's own units with the previous level known at
the cutoff: ``level = inverse(code, transformed, previous_level)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl

from canvas.align import Placements, is_sorted, run_ends
from warehouse.fields import Field, Transform

CODES: tuple[Transform, ...] = tuple(Transform)  # a field's code is its index here
LEVEL, LOG, DIFF, LOGDIFF = (CODES.index(t) for t in CODES)


def transform_codes(fields: Sequence[Field]) -> np.ndarray:
    """(F,) int8 transform code of each field."""
    return np.array([CODES.index(f.transform) for f in fields], dtype=np.int8)


def differenced(codes: np.ndarray) -> np.ndarray:
    """Indices of the fields whose value depends on a previous observation."""
    return np.flatnonzero((codes == DIFF) | (codes == LOGDIFF))


def forward(codes: np.ndarray, x: np.ndarray, previous: np.ndarray) -> np.ndarray:
    """Transformed values (float64; NaN where undefined) of levels `x` given `previous`."""
    x = np.asarray(x, dtype=np.float64)
    previous = np.asarray(previous, dtype=np.float64)
    codes = np.asarray(codes)
    shape = np.broadcast_shapes(codes.shape, x.shape, previous.shape)
    present = np.flatnonzero(np.bincount(codes.reshape(-1), minlength=len(CODES)))
    out = np.empty(shape)
    # each transform over the whole array only when some field has it
    with np.errstate(divide="ignore", invalid="ignore"):
        for code in present:
            t = _transform(code, x, previous)
            if len(present) == 1:
                out[...] = t
            else:
                np.copyto(out, np.broadcast_to(t, shape), where=codes == code)
    return out


def _transform(code: int, x: np.ndarray, previous: np.ndarray) -> np.ndarray:
    if code == LOG:
        return np.log(np.where(x > 0, x, np.nan))
    if code == DIFF:
        return x - previous
    if code == LOGDIFF:
        return np.log(np.where((x > 0) & (previous > 0), x / previous, np.nan))
    return x


def inverse(codes: np.ndarray, t: np.ndarray, previous: np.ndarray) -> np.ndarray:
    """Levels (float64) from transformed values `t` and the previous levels."""
    t = np.asarray(t, dtype=np.float64)
    previous = np.asarray(previous, dtype=np.float64)
    logged = (codes == LOG) | (codes == LOGDIFF)
    growth = np.exp(np.where(logged, t, 0.0))  # no exp of a level: it may overflow
    out = np.where(codes == LOG, growth, t)
    out = np.where(codes == DIFF, previous + t, out)
    return np.where(codes == LOGDIFF, previous * growth, out)


def stationary_placements(
    p: Placements, raw: np.ndarray, codes: np.ndarray
) -> tuple[Placements, np.ndarray, np.ndarray]:
    """The placements (in (field, window, slot) order when any field is differenced or
    logged), each one's transformed value (NaN where undefined: leave that cell absent)
    and the level it was transformed from.

    `raw` holds the level of each source row (`p.row` indexes it); `codes` the transform
    code per field. Vector fields are levels: their value is whatever `raw` holds.
    """
    if not (codes[p.field] != LEVEL).any():  # levels only: no order needed, nothing to do
        x = raw[p.row].astype(np.float64)
        return p, x, x
    order = np.lexsort((p.slot, p.window, p.field))
    p = Placements(p.window[order], p.slot[order], p.field[order], p.row[order])
    x = raw[p.row].astype(np.float64)
    code = codes[p.field]
    same = np.r_[False, (p.field[1:] == p.field[:-1]) & (p.window[1:] == p.window[:-1])]
    previous = np.where(same, np.r_[np.nan, x[:-1]], np.nan)
    t = np.where(code == LEVEL, x, forward(code, x, previous))
    return p, t, x


def step_statistics(
    frame: pl.DataFrame, codes: np.ndarray, step: str
) -> dict[int, dict[str, float]]:
    """Per field index: mean, population std and count of the transformed values.

    `frame` (field: int, observed_at, value) holds one value per field and observation
    time (its latest vintage known at the end of the training period). Level and log
    fields count every observation; differenced fields the changes between the last
    observations of consecutive observed steps, as the canvas holds them.
    """
    field, observed, value = (frame[k].to_numpy() for k in ("field", "observed_at", "value"))
    return step_moments(field, observed, value, codes, step)


def step_moments(
    field: np.ndarray, observed: np.ndarray, value: np.ndarray, codes: np.ndarray, step: str
) -> dict[int, dict[str, float]]:
    """`step_statistics` of the rows (field, observed, value) as arrays."""
    if not is_sorted(field, observed):
        order = np.lexsort((observed, field))
        field, observed, value = field[order], observed[order], value[order]
    known = np.flatnonzero(~np.isnan(value))
    if len(known) < len(value):
        field, observed, value = field[known], observed[known], value[known]
    code = codes[field]
    changes = (code == DIFF) | (code == LOGDIFF)
    steps = pl.Series(observed).dt.truncate(step).to_physical().to_numpy()
    # every observation of a level or log field; each observed step's last of the others
    rows = np.flatnonzero(~changes | run_ends(field, steps))
    if len(rows) < len(field):
        field, value, code, changes = field[rows], value[rows], code[rows], changes[rows]
    # a change is from the field's previous observed step: the row before, same field
    after = np.r_[False, field[1:] == field[:-1]] & changes
    previous = np.where(after, np.r_[np.nan, value[:-1]], np.nan)
    return _moments(field, forward(code, value, previous))


def _moments(field: np.ndarray, t: np.ndarray) -> dict[int, dict[str, float]]:
    """Per field index: mean, population std and count of the finite values of `t`, each
    sum taken in row order (so the same rows give the same bits on any machine)."""
    finite = np.isfinite(t)
    t = np.where(finite, t, 0.0)
    count = np.bincount(field, weights=finite)
    present = np.flatnonzero(count)
    mean = np.bincount(field, weights=t)[present] / count[present]
    by_field = np.zeros(len(count))
    by_field[present] = mean
    deviation = np.where(finite, t - by_field[field], 0.0)
    variance = np.bincount(field, weights=deviation * deviation)[present] / count[present]
    return {
        int(f): {"mean": float(m), "std": float(np.sqrt(v)), "count": int(n)}
        for f, m, v, n in zip(present, mean, variance, count[present], strict=True)
    }


def field_stats(
    per_field: dict[int, dict[str, float]], paths: Sequence[str]
) -> dict[str, dict[str, float]]:
    """Normalisation statistics by path: a field without training data gets the identity
    (mean 0, std 1, count 0); a constant one std 1."""
    stats = {}
    for f, path in enumerate(paths):
        row = per_field.get(f)
        std = row["std"] if row and row["std"] and np.isfinite(row["std"]) else 0.0
        stats[path] = {
            "mean": float(row["mean"]) if row else 0.0,
            "std": float(std) if std > 0 else 1.0,
            "count": int(row["count"]) if row else 0,
        }
    return stats


def latest_earlier(has: np.ndarray, axis: int) -> np.ndarray:
    """Index along `axis` of the latest earlier position where `has` is true (-1: none)."""
    has = np.moveaxis(has, axis, 0)
    position = np.arange(len(has)).reshape(-1, *[1] * (has.ndim - 1))
    latest = np.full(has.shape, -1, dtype=np.int64)
    if len(has) > 1:  # at position i, the latest true one at or before i - 1
        np.maximum.accumulate(np.where(has[:-1], position[:-1], -1), axis=0, out=latest[1:])
    return np.moveaxis(latest, 0, axis)


def previous_levels(levels: np.ndarray) -> np.ndarray:
    """(n, T, L) observed levels (NaN: absent) -> at each step, the latest level at an
    earlier step of the same window (NaN where there is none)."""
    last = latest_earlier(~np.isnan(levels), axis=1)
    filled = np.take_along_axis(levels, np.maximum(last, 0), axis=1)
    return np.where(last >= 0, filled, np.nan)


def step_transforms(
    levels: np.ndarray, has: np.ndarray, codes: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(S, F) levels by step (`has`: the step holds one) -> (S, F) transformed values, each
    from the latest earlier step holding a level (NaN where undefined), and how many steps
    back that step is (S + 1 where there is none)."""
    last = latest_earlier(has, axis=0)
    previous = np.take_along_axis(levels, np.maximum(last, 0), axis=0)
    t = forward(codes, levels, np.where(last >= 0, previous, np.nan))
    back = np.where(last >= 0, np.arange(len(levels))[:, None] - last, len(levels) + 1)
    return t, back


def to_field_units(
    t: np.ndarray, levels: np.ndarray, codes: np.ndarray, level_fields: np.ndarray
) -> np.ndarray:
    """Values (n, T, F) in their modelled units (de-normalised transformed values) ->
    the fields' own units. A differenced field is inverted from the latest earlier level
    of the same window (`levels`, (n, T, L) for the fields `level_fields`)."""
    out = inverse(codes, t, np.nan)  # levels and logs need no previous level
    if len(level_fields):
        out[..., level_fields] = inverse(
            codes[level_fields], t[..., level_fields], previous_levels(levels)
        )
    return out

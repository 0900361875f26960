"""Probabilistic nowcasts: a run's one-step errors on the validation period as its
predictive distribution (split conformal).

    errors = validation_errors(report.predictions, stds)   # on the validation period
    lower, upper = interval(errors[field], 0.8)            # add to a prediction
    scores = score(test_report.predictions, errors, stds)   # coverage and CRPS on test
    fans = fan(test_report.predictions, errors, stds, test)   # the same, in field units
    dfm = score_gaussian(test_report.predictions, stds)     # the DFM's Gaussian intervals

For each field the errors (actual - prediction, normalised) of the validation windows'
last step are kept; a prediction plus those errors is the predictive distribution. An
interval at level a spans the errors' conformal quantiles ((1 - a) / 2 and (1 + a) / 2
with the finite-sample correction). The test period never enters: coverage and CRPS are
measured there, on cells the errors did not come from.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import polars as pl

from canvas.shards import ShardDataset
from canvas.stationary import differenced, to_field_units, transform_codes

LEVELS = (0.8, 0.95)
ERRORS = "errors.json"  # a run's validation errors per field, beside its checkpoints
MIN_ERRORS = 5  # fewer validation errors give a field no interval


def validation_errors(
    predictions: pl.DataFrame, std: Mapping[str, float]
) -> dict[str, list[float]]:
    """Per field, the sorted normalised errors (actual - model) of an evaluation's
    last-step cells (`EvaluationReport.predictions`, modelled units; `std` per field)."""
    scale = pl.col("field").replace_strict(dict(std), return_dtype=pl.Float64)
    errors = predictions.select(
        "field", ((pl.col("actual") - pl.col("model")) / scale).alias("error")
    ).filter(pl.col("error").is_finite())
    grouped = errors.group_by("field", maintain_order=True).agg(pl.col("error").sort())
    return {field: values for field, values in grouped.iter_rows() if len(values) >= MIN_ERRORS}


def interval(errors: list[float] | np.ndarray, level: float) -> tuple[float, float]:
    """(lower, upper) offsets from a prediction: the conformal quantiles of `errors`."""
    e = np.sort(np.asarray(errors, dtype=np.float64))
    n = len(e)
    tail = (1 - level) / 2
    # rounded first: (1 - 0.8) / 2 * 20 is 1.9999999999999996 in binary floating point
    lo = max(0, math.floor(round(tail * (n + 1), 9)) - 1)
    hi = min(n - 1, math.ceil(round((1 - tail) * (n + 1), 9)) - 1)
    return float(e[lo]), float(e[hi])


def crps(errors: np.ndarray, residual: float) -> float:
    """CRPS of the ensemble prediction + errors at the outcome (prediction + residual):
    E|X - y| - E|X - X'| / 2."""
    e = np.asarray(errors, dtype=np.float64)
    spread = np.abs(e[:, None] - e[None, :]).mean()
    return float(np.abs(e - residual).mean() - spread / 2)


def score(
    predictions: pl.DataFrame, errors: Mapping[str, list[float]], std: Mapping[str, float]
) -> dict[str, float]:
    """Coverage of each level's interval and mean CRPS (normalised units) over the cells
    of `predictions` whose field has validation errors."""
    rows = predictions.filter(pl.col("field").is_in(list(errors)) & pl.col("actual").is_finite())
    residual = (rows["actual"] - rows["model"]).to_numpy() / np.array(
        [std[f] for f in rows["field"]]
    )
    out: dict[str, float] = {"cells": len(rows)}
    for level in LEVELS:
        bounds = np.array([interval(errors[f], level) for f in rows["field"]]).reshape(-1, 2)
        inside = (bounds[:, 0] <= residual) & (residual <= bounds[:, 1])
        out[f"coverage_{round(level * 100)}"] = float(inside.mean()) if len(rows) else math.nan
    scores = [crps(errors[f], r) for f, r in zip(rows["field"], residual, strict=True)]
    out["crps"] = float(np.mean(scores)) if scores else math.nan
    return out


def score_gaussian(
    predictions: pl.DataFrame,
    std: Mapping[str, float],
    *,
    mean: str = "dfm",
    spread: str = "dfm_std",
) -> dict[str, float]:
    """Coverage of each level's central interval and mean CRPS (normalised units) of a
    Gaussian predictive distribution (columns `mean` and `spread`, modelled units) over
    the cells where it is defined: the DFM's, next to the model's `score`."""
    from scipy.stats import norm

    rows = predictions.filter(
        pl.col(mean).is_finite() & (pl.col(spread) > 0) & pl.col("actual").is_finite()
    )
    z = ((rows["actual"] - rows[mean]) / rows[spread]).to_numpy()
    sigma = rows[spread].to_numpy() / np.array([std[f] for f in rows["field"]])
    out: dict[str, float] = {"cells": len(rows)}
    for level in LEVELS:
        inside = np.abs(z) <= norm.ppf((1 + level) / 2)
        out[f"coverage_{round(level * 100)}"] = float(inside.mean()) if len(rows) else math.nan
    crps = sigma * (z * (2 * norm.cdf(z) - 1) + 2 * norm.pdf(z) - 1 / math.sqrt(math.pi))
    out["crps"] = float(crps.mean()) if len(rows) else math.nan
    return out


def fan(
    predictions: pl.DataFrame,
    errors: Mapping[str, list[float]],
    std: Mapping[str, float],
    dataset: ShardDataset,
) -> pl.DataFrame:
    """The forecast cells of an evaluation of `dataset` (modelled units) that have
    validation errors, in the fields' own units: field, date, actual, model and each
    level's lower and upper bound. A differenced field is inverted from its latest level
    known at the window's cutoff; the inverse is monotone, so the bounds keep their order."""
    rows = predictions.filter(pl.col("field").is_in(list(errors)))
    layout = dataset.layout
    days = dataset.window_days
    cell_days = rows["date"].to_numpy().astype("datetime64[D]").astype(np.int64)
    window = np.searchsorted(days, cell_days)
    if not np.array_equal(days[np.minimum(window, len(days) - 1)], cell_days):
        raise ValueError("predictions hold dates that are no window of this dataset")
    field = np.array([layout.index[f] for f in rows["field"]], dtype=np.int64)
    scale = np.array([std[f] for f in rows["field"]])
    model = rows["model"].to_numpy()
    modelled = {"actual": rows["actual"].to_numpy(), "model": model}
    for level in LEVELS:
        bounds = np.array([interval(errors[f], level) for f in rows["field"]]).reshape(-1, 2)
        modelled[f"lower_{round(level * 100)}"] = model + bounds[:, 0] * scale
        modelled[f"upper_{round(level * 100)}"] = model + bounds[:, 1] * scale
    windows, slot = np.unique(window, return_inverse=True)
    codes = transform_codes(layout.fields)
    level_fields = differenced(codes)
    levels = (
        dataset.gather(windows, ["levels"])["levels"].astype(np.float64)
        if len(level_fields)
        else np.zeros((len(windows), layout.T, 0))
    )
    out = {"field": rows["field"], "date": rows["date"]}
    for name, values in modelled.items():
        t = np.full((len(windows), layout.T, layout.n_fields), np.nan)
        t[slot, -1, field] = values
        out[name] = to_field_units(t, levels, codes, level_fields)[slot, -1, field]
    return pl.DataFrame(out, nan_to_null=False)

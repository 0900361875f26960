"""Stationary fields: transforms on the canvas, their statistics and their inverse."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest

from canvas import compile_layout
from canvas.align import Placements
from canvas.materialize import materialize_canvas
from canvas.shards import ShardDataset
from canvas.stationary import (
    DIFF,
    LEVEL,
    LOG,
    LOGDIFF,
    forward,
    inverse,
    previous_levels,
    stationary_placements,
    step_statistics,
)
from training.intervals import fan, interval
from warehouse.catalog import FIELDS
from warehouse.fields import Field, Period, Transform
from warehouse.schema import default_schema
from warehouse.store import Warehouse

NOW = dt.datetime(2025, 6, 1)
SP500 = "financial.equities.sp500"  # logdiff
UNRATE = "country_us.macro.labor.unemployment_rate"  # diff
VIX = "financial.equities.vix"  # level
STARTS = "country_us.macro.housing.housing_starts"  # log


def test_the_catalogue_declares_fred_md_style_transforms():
    schema = default_schema()
    assert schema.field(SP500).transform == Transform.LOGDIFF
    assert schema.field(UNRATE).transform == Transform.DIFF
    assert schema.field(VIX).transform == Transform.LEVEL
    assert schema.field(STARTS).transform == Transform.LOG
    assert schema.field("firm_AAPL.earnings.eps_actual").transform == Transform.DIFF
    # rates of change, returns, diffusion indices and latents stay levels
    for f in FIELDS:
        if f.unit.startswith(("percent change", "percent (daily", "diffusion")) or f.latent:
            assert f.transform == Transform.LEVEL, f.path
    with pytest.raises(ValueError, match="unknown transform 'cube'"):
        Field("a.b", "x", "u", Period.DAILY, transform="cube")
    with pytest.raises(ValueError, match="modelled as levels"):
        Field("a.b", "x", "u", Period.DAILY, dimension=3, transform="diff")


def test_forward_and_inverse_on_known_numbers():
    codes = np.array([LEVEL, LOG, DIFF, LOGDIFF])
    x = np.array([2.0, np.e, 5.5, 110.0])
    previous = np.array([9.0, 9.0, 5.0, 100.0])
    t = forward(codes, x, previous)
    np.testing.assert_array_equal(t[:3], [2.0, 1.0, 0.5])
    assert t[3] == np.log(1.1)
    np.testing.assert_allclose(inverse(codes, t, previous), x, rtol=1e-15)
    # undefined: no previous value, a logarithm of a value <= 0
    t = forward(codes, np.array([1.0, -1.0, 1.0, 1.0]), np.array([np.nan, 1.0, np.nan, -2.0]))
    assert t[0] == 1.0 and np.isnan(t[1:]).all()


def test_a_differenced_value_uses_the_previous_observation_of_the_same_window():
    # field 0 (diff) in window 0 at slots 3, 0, 1 (arrival order) and window 1 at slot 0;
    # field 1 (level) beside it
    p = Placements(
        window=np.array([0, 0, 0, 1, 0]),
        slot=np.array([3, 0, 1, 0, 2]),
        field=np.array([0, 0, 0, 0, 1]),
        row=np.array([0, 1, 2, 3, 4]),
    )
    raw = np.array([10.0, 4.0, 7.0, 8.0, 3.0])
    p, t, levels = stationary_placements(p, raw, np.array([DIFF, LEVEL]))
    cells = list(zip(p.window, p.slot, p.field, strict=True))
    assert cells == [(0, 0, 0), (0, 1, 0), (0, 3, 0), (1, 0, 0), (0, 2, 1)]
    # slot 3 follows slot 1 (no slot 2 observed); a window's first observation has no change
    np.testing.assert_array_equal(t, [np.nan, 3.0, 3.0, np.nan, 3.0])
    np.testing.assert_array_equal(levels, [4.0, 7.0, 10.0, 8.0, 3.0])


def test_previous_levels_carry_the_latest_earlier_level_within_a_window():
    nan = np.nan
    levels = np.array([[[1.0], [nan], [3.0], [nan]], [[nan], [nan], [5.0], [6.0]]])
    expected = np.array([[[nan], [1.0], [1.0], [3.0]], [[nan], [nan], [nan], [5.0]]])
    np.testing.assert_array_equal(previous_levels(levels), expected)


def test_statistics_of_changes_between_consecutive_observed_steps():
    days = [dt.datetime(2020, m, d) for m, d in ((1, 5), (1, 20), (2, 10), (4, 1))]
    frame = pl.DataFrame(
        {
            "field": [0, 0, 0, 0, 1, 1],
            "observed_at": [*days, days[0], days[1]],
            "value": [1.0, 2.0, 5.0, 4.0, 10.0, 30.0],
        }
    )
    stats = step_statistics(frame, np.array([DIFF, LOG]), "1mo")
    # monthly steps: Jan ends at 2.0, Feb 5.0, (no March), Apr 4.0 -> changes 3, -1
    assert (stats[0]["mean"], stats[0]["std"], stats[0]["count"]) == (1.0, 2.0, 2)
    assert stats[1]["mean"] == pytest.approx((np.log(10) + np.log(30)) / 2, rel=1e-15)
    assert stats[1]["count"] == 2


@pytest.fixture(scope="module")
def canvas(tmp_path_factory):
    """Monthly S&P 500 closes and unemployment (and VIX as a level) in a warehouse."""
    root = tmp_path_factory.mktemp("stationary")
    wh = Warehouse(root / "wh.duckdb")
    months = pl.datetime_range(dt.datetime(2010, 1, 1), dt.datetime(2015, 12, 1), "1mo", eager=True)
    n = len(months)
    rng = np.random.default_rng(0)
    sp500 = 1000.0 * np.exp(np.cumsum(rng.normal(0.01, 0.04, n)))
    unrate = 5.0 + np.cumsum(rng.normal(0.0, 0.2, n))
    vix = 15.0 + rng.normal(0.0, 3.0, n)
    rows = []
    for path, values, lag in ((SP500, sp500, 0), (UNRATE, unrate, 35), (VIX, vix, 0)):
        rows.append(
            pl.DataFrame(
                {
                    "field_path": path,
                    "observed_at": months,
                    "value": values,
                    "known_at": months.dt.offset_by(f"{lag}d"),
                }
            )
        )
    wh.ingest(pl.concat(rows), source="fred", now=NOW)
    layout = compile_layout(SP500, UNRATE, VIX, T=6, d_model=16)
    manifest = materialize_canvas(wh, layout, root / "c", start="2010-01-01", end="2015-12-31")
    truth = {SP500: sp500, UNRATE: unrate, VIX: vix}
    return ShardDataset(root / "c", split=None, layout=layout), manifest, truth, months


def test_the_canvas_holds_normalised_changes_and_the_levels_to_invert_them(canvas):
    dataset, manifest, truth, months = canvas
    assert manifest.transforms == {SP500: "logdiff", UNRATE: "diff"}
    assert manifest.level_fields == [UNRATE, SP500]  # layout order
    batch = dataset.__getitems__(list(range(len(dataset))))
    values, presence = batch["values"].numpy(), batch["presence"].numpy() > 0
    f = dataset.layout.index[SP500]
    # window n covers months n .. n+5; its first S&P step has no earlier one in the window
    assert not presence[:, 0, f].any() and presence[:, 1:, f].all()
    change = np.log(truth[SP500][6] / truth[SP500][5])  # window 1, slot 5
    s = manifest.stats[SP500]
    assert values[1, 5, f] == pytest.approx((change - s["mean"]) / s["std"], rel=1e-5)
    # statistics are those of the training period's monthly log changes
    train_end = np.datetime64(manifest.split_dates["train_end"], "us")
    train = truth[SP500][months.to_numpy() < train_end]
    assert s["mean"] == pytest.approx(np.diff(np.log(train)).mean(), rel=1e-9)
    assert s["count"] == len(train) - 1


def test_true_values_invert_to_the_observed_levels(canvas):
    """De-normalising and inverting the stored values gives back each field's level.
    Tolerance: levels and normalised values are stored as float32 (u = 2**-24 ~ 6e-8
    relative), a normalised change is at most ~10 in size, so the level's relative error
    is below u * (1 + 10 * std) + u < 2e-7; rel=1e-6."""
    dataset, manifest, truth, months = canvas
    index = list(range(len(dataset)))
    batch = dataset.__getitems__(index)
    units = dataset.in_field_units(batch["values"], index)
    presence = batch["presence"].numpy() > 0
    for path, series in truth.items():
        f = dataset.layout.index[path]
        lag = 1 if path == UNRATE else 0  # a month's unemployment is released the next
        for n in range(0, len(dataset), 7):
            for j in np.flatnonzero(presence[n, :, f]):
                assert units[n, j, f] == pytest.approx(series[n + j], rel=1e-6), (path, n, j)
            assert presence[n, -1, f] == (lag == 0)


def test_fan_charts_come_back_in_field_units_from_the_level_known_at_the_cutoff(canvas):
    """One-step forecasts with their intervals, made in modelled units (a log change for
    the S&P 500, the level for VIX), are inverted from the previous level of the same
    window: actual -> the true close, bounds -> previous close x exp(change + offset)."""
    dataset, manifest, truth, months = canvas
    index = list(range(len(dataset)))
    batch = dataset.__getitems__(index)
    days = batch["window_end"].numpy().astype("datetime64[D]")
    rows = []
    for path in (SP500, VIX):
        f, s = dataset.layout.index[path], manifest.stats[path]
        actual = batch["values"].numpy()[:, -1, f] * s["std"] + s["mean"]
        rows.append(
            pl.DataFrame({"field": path, "date": days, "actual": actual, "model": actual - 0.1})
        )
    predictions = pl.concat(rows)
    errors = {path: list(np.linspace(-1.0, 1.0, 19)) for path in (SP500, VIX)}
    std = {path: manifest.stats[path]["std"] for path in (SP500, VIX)}
    fans = fan(predictions, errors, std, dataset)
    lo80, hi80 = interval(errors[SP500], 0.8)
    sp = fans.filter(pl.col("field") == SP500)
    n = np.arange(len(dataset))
    previous, close = truth[SP500][n + 4], truth[SP500][n + 5]  # window n ends at month n+5
    assert sp["actual"].to_numpy() == pytest.approx(close, rel=1e-6)
    change = np.log(close / previous) - 0.1
    assert sp["model"].to_numpy() == pytest.approx(previous * np.exp(change), rel=1e-6)
    lower = previous * np.exp(change + lo80 * std[SP500])
    assert sp["lower_80"].to_numpy() == pytest.approx(lower, rel=1e-6)
    vix = fans.filter(pl.col("field") == VIX)
    assert vix["upper_80"].to_numpy() == pytest.approx(
        truth[VIX][n + 5] - 0.1 + hi80 * std[VIX], rel=1e-6
    )
    for a, b in (("lower_95", "lower_80"), ("lower_80", "model"), ("model", "upper_80")):
        assert (fans[a] <= fans[b]).all(), (a, b)
    assert (fans["upper_80"] <= fans["upper_95"]).all()
    elsewhere = predictions.with_columns(pl.col("date") + pl.duration(days=1))
    with pytest.raises(ValueError, match="no window of this dataset"):
        fan(elsewhere, errors, std, dataset)

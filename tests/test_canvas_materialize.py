"""The materializer: warehouse rows -> point-in-time shards, checked against the warehouse."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest

import canvas.materialize as materialize_module
from canvas.align import window_cutoffs
from canvas.layout import compile_layout
from canvas.materialize import CanvasManifest, materialize_canvas
from canvas.verify import verify_windows
from ingest.synthetic import SyntheticWorldConfig, generate_world
from warehouse.store import Warehouse

CPI = "country_us.macro.inflation.headline_cpi"
GDP = "country_us.macro.output.gdp_nowcast"
NOW = dt.datetime(2025, 6, 1)


def load(out, name):
    manifest = CanvasManifest.load(out)
    return np.concatenate([np.load(out / s["dir"] / f"{name}.npy") for s in manifest.shards])


@pytest.fixture(scope="module")
def world_warehouse(tmp_path_factory):
    path = tmp_path_factory.mktemp("canvas") / "wh.duckdb"
    wh = Warehouse(path)
    world = generate_world(SyntheticWorldConfig(start="2010-01-01", end="2016-12-31"))
    for name, frame in world.sources.items():
        wh.ingest(frame, source=name, now=NOW)
    return wh


def test_presence_matches_the_warehouse_in_every_window(world_warehouse, tmp_path):
    layout = compile_layout("country_us", "financial", T=6)
    out = tmp_path / "canvas"
    manifest = materialize_canvas(
        world_warehouse, layout, out, start="2010-01-01", end="2016-12-31", shard_windows=25
    )
    assert manifest.n_windows == 84 - 6 + 1
    assert len(manifest.shards) == 4
    problems, checked = verify_windows(
        world_warehouse, out, windows=list(range(manifest.n_windows))
    )
    assert problems == [] and checked == manifest.n_windows
    presence = load(out, "presence")
    assert presence.shape == (79, 6, layout.n_fields)
    # the check bites: a flipped bit is reported
    shard = out / manifest.shards[0]["dir"] / "presence.npy"
    tampered = np.load(shard)
    tampered[3, 2, layout.index[CPI]] ^= 1
    np.save(shard, tampered)
    problems, _ = verify_windows(world_warehouse, out, windows=[3])
    assert len(problems) == 1 and CPI in problems[0] and "window 3, step 2" in problems[0]


def test_revisions_appear_only_after_their_release(tmp_path):
    wh = Warehouse(tmp_path / "wh.duckdb")
    months = pl.datetime_range(dt.datetime(2020, 1, 1), dt.datetime(2020, 12, 1), "1mo", eager=True)
    first = pl.DataFrame(
        {
            "field_path": CPI,
            "observed_at": months,
            "value": [float(i) for i in range(12)],
            "known_at": months.dt.offset_by("1mo").dt.offset_by("12d"),
        }
    )
    revision = pl.DataFrame(
        {
            "field_path": [CPI],
            "observed_at": [dt.datetime(2020, 3, 1)],
            "value": [100.0],
            "known_at": [dt.datetime(2020, 7, 20)],
        }
    )
    wh.ingest(pl.concat([first, revision]), source="fred", now=NOW)
    layout = compile_layout(CPI, T=6, include_latent=False)
    out = tmp_path / "canvas"
    manifest = materialize_canvas(
        wh,
        layout,
        out,
        start="2020-01-01",
        end="2020-12-31",
        train_end="2020-12-31",
        val_end="2020-12-31",
    )
    values = load(out, "values")[..., 0] * manifest.std[0] + manifest.mean[0]
    presence = load(out, "presence")[..., 0]
    ends = np.load(out / "window_end.npy")
    # window ending June (cutoff Jul 1) holds March at slot 2: the first release, 2.0
    june = int(np.flatnonzero(ends == np.datetime64("2020-06-01"))[0])
    assert presence[june, 2] == 1 and values[june, 2] == pytest.approx(2.0)
    # May is released Jun 12, so it is present; June (released Jul 12) is not
    assert presence[june].tolist() == [1, 1, 1, 1, 1, 0]
    # window ending July (cutoff Aug 1) sees the revision of Jul 20 at slot 1
    july = june + 1
    assert values[july, 1] == pytest.approx(100.0)
    assert verify_windows(wh, out, windows=list(range(manifest.n_windows)))[0] == []


def test_quarterly_fields_are_not_forward_filled(world_warehouse, tmp_path):
    layout = compile_layout(GDP, T=12, include_latent=False)
    materialize_canvas(
        world_warehouse, layout, tmp_path / "c", start="2010-01-01", end="2016-12-31"
    )
    presence = load(tmp_path / "c", "presence")[..., 0]
    ends = np.load(tmp_path / "c" / "window_end.npy")
    months = ends.astype("datetime64[M]").astype(int) % 12
    # slot j of window n is month (end - 11 + j): quarter starts only
    slot_month = (months[:, None] - 11 + np.arange(12)[None, :]) % 12
    assert presence[slot_month % 3 != 0].sum() == 0
    assert presence[slot_month % 3 == 0].sum() > 0


def test_normalisation_uses_the_training_period_only(tmp_path):
    def build(late_value):
        wh = Warehouse(tmp_path / f"wh{late_value}.duckdb")
        months = pl.datetime_range(
            dt.datetime(2018, 1, 1), dt.datetime(2020, 12, 1), "1mo", eager=True
        )
        values = [1.0 + (i % 3) for i in range(len(months) - 6)] + [late_value] * 6
        wh.ingest(
            pl.DataFrame(
                {
                    "field_path": CPI,
                    "observed_at": months,
                    "value": values,
                    "known_at": months.dt.offset_by("40d"),
                }
            ),
            source="f",
            now=NOW,
        )
        return materialize_canvas(
            wh,
            compile_layout(CPI, T=3, include_latent=False),
            tmp_path / f"c{late_value}",
            start="2018-01-01",
            end="2020-12-31",
            train_end="2019-12-31",
            val_end="2020-06-30",
        )

    a, b = build(5.0), build(500.0)
    assert a.stats[CPI] == pytest.approx(b.stats[CPI])
    assert a.stats[CPI]["mean"] == pytest.approx(2.0, abs=0.05)


def test_streaming_chunks_give_identical_shards(world_warehouse, tmp_path, monkeypatch):
    layout = compile_layout("country_us", "financial", T=4)
    args = dict(start="2012-01-01", end="2015-12-31")
    materialize_canvas(world_warehouse, layout, tmp_path / "one", **args)
    monkeypatch.setattr(materialize_module, "PLACEMENT_BUDGET", 2000)
    materialize_canvas(world_warehouse, layout, tmp_path / "many", **args)
    for name in ("values", "presence"):
        assert np.array_equal(load(tmp_path / "one", name), load(tmp_path / "many", name))


def test_vector_fields_are_materialized(tmp_path):
    wh = Warehouse(tmp_path / "wh.duckdb")
    days = [dt.datetime(2021, 1, d) for d in (4, 5, 6)]
    vectors = [[float(i)] * 384 for i in range(3)]
    wh.ingest(
        pl.DataFrame(
            {
                "field_path": "narratives.news.embedding",
                "observed_at": days,
                "vector": vectors,
                "known_at": [d + dt.timedelta(hours=23) for d in days],
            },
            schema_overrides={"vector": pl.List(pl.Float32)},
        ),
        source="news",
        now=NOW,
    )
    layout = compile_layout("narratives", T=3, step="1d", include_latent=False)
    out = tmp_path / "c"
    manifest = materialize_canvas(wh, layout, out, start="2021-01-04", end="2021-01-06")
    assert manifest.vector_fields == ["narratives.news.embedding"]
    vec = load(out, "vectors")
    assert vec.shape == (1, 3, 1, 384)
    assert vec[0, :, 0, 0].tolist() == [0.0, 1.0, 2.0]


def test_a_failed_run_leaves_the_previous_canvas_intact(world_warehouse, tmp_path, monkeypatch):
    layout = compile_layout("country_us", T=4)
    out = tmp_path / "canvas"
    first = materialize_canvas(world_warehouse, layout, out, start="2012-01-01", end="2014-12-31")

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(materialize_module, "place", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        materialize_canvas(world_warehouse, layout, out, start="2012-01-01", end="2016-12-31")
    assert CanvasManifest.load(out).n_windows == first.n_windows
    assert [p.name for p in tmp_path.iterdir()] == ["canvas"]


def test_manifest_records_layout_and_splits(world_warehouse, tmp_path):
    layout = compile_layout("financial", T=6)
    manifest = materialize_canvas(
        world_warehouse, layout, tmp_path / "c", start="2010-01-01", end="2016-12-31"
    )
    assert manifest.layout_hash == layout.layout_hash()
    assert manifest.fields == layout.paths
    bounds = manifest.splits
    assert bounds["train"][0] == 0 and bounds["test"][1] == manifest.n_windows
    assert bounds["train"][1] == bounds["val"][0] and bounds["val"][1] == bounds["test"][0]
    assert compile_layout("financial", "country_us", T=6).layout_hash() != layout.layout_hash()
    # the model's width is not the canvas's: another d_model reads the same shards
    assert compile_layout("financial", T=6, d_model=32).layout_hash() == layout.layout_hash()
    with pytest.raises(ValueError, match="a window needs T=6"):
        materialize_canvas(
            world_warehouse, layout, tmp_path / "d", start="2010-01-01", end="2010-03-01"
        )


def test_cutoffs_inside_a_step_match_the_warehouse_and_the_step_end_canvas(
    world_warehouse, tmp_path
):
    layout = compile_layout("country_us", "financial", T=4)
    args = dict(start="2012-01-01", end="2014-12-31", train_end="2013-06-30", shard_windows=30)
    monthly = materialize_canvas(world_warehouse, layout, tmp_path / "monthly", **args)
    weekly = materialize_canvas(
        world_warehouse, layout, tmp_path / "weekly", cutoffs_per_step=4, **args
    )
    assert weekly.n_windows == 4 * monthly.n_windows
    # every window, those cut inside a month included, holds exactly what was known then
    problems, checked = verify_windows(
        world_warehouse, tmp_path / "weekly", windows=list(range(weekly.n_windows))
    )
    assert problems == [] and checked == weekly.n_windows
    # the window cut at each step's end is the monthly canvas's window, bit for bit
    for name in ("values", "presence", "levels"):
        assert np.array_equal(
            load(tmp_path / "weekly", name)[3::4], load(tmp_path / "monthly", name), equal_nan=True
        )
    # earlier in the month, less is known: presence only grows through a step's cutoffs
    presence = load(tmp_path / "weekly", "presence").reshape(monthly.n_windows, 4, 4, -1)
    assert (np.diff(presence.astype(np.int8), axis=1) >= 0).all()
    assert (presence[:, 0] < presence[:, 3]).any()
    # the training split ends at the last cutoff on or before train_end, inside June
    cutoffs = window_cutoffs(np.load(tmp_path / "weekly" / "edges.npy"), 4, per_step=4)
    end = weekly.splits["train"][1]
    assert cutoffs[end - 1] <= np.datetime64("2013-06-30") < cutoffs[end]
    assert end % 4 != 0  # inside a month: June's earlier windows are training windows
    assert weekly.stats == monthly.stats

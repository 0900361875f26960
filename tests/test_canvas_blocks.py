"""Shards copied from per-step tables, block by block, against the placement reference:
every observation vintage placed in every window it reaches (`canvas.align.place`), then
transformed (`canvas.stationary.stationary_placements`) and normalised. Bit for bit, for
random vintages and revisions, every transform, vectors, cutoffs inside a step, and runs
of fields and blocks of windows far smaller than the defaults."""

from __future__ import annotations

import datetime as dt
import itertools

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import canvas.materialize as materialize_module
from canvas.align import place
from canvas.layout import CanvasLayout, compile_layout
from canvas.materialize import CanvasManifest, materialize_canvas
from canvas.stationary import stationary_placements, transform_codes
from warehouse.store import Warehouse

NOW = dt.datetime(2025, 6, 1)
ORIGIN = dt.datetime(2020, 1, 1)
# logdiff, diff, level, log: every transform
SCALARS = (
    "financial.equities.sp500",
    "country_us.macro.labor.unemployment_rate",
    "financial.equities.vix",
    "country_us.macro.housing.housing_starts",
)
EMBEDDING = "narratives.news.embedding"
DIM = 384
DAYS = 90
_sources = itertools.count()


def vintages(seed: int, density: float) -> list[tuple]:
    """(field, observed day, hours to its first release, hours on to a revision or None,
    value) on a share `density` of the days of each field; releases often within a step or
    two, so that windows hold changes and are cut before releases and revisions."""
    rng = np.random.default_rng(seed)
    out = []
    for f in range(len(SCALARS) + 1):  # the last is the embedding
        for day in np.flatnonzero(rng.random(DAYS) < density):
            lag = int(rng.integers(0, 60) if rng.random() < 0.7 else rng.integers(0, 24 * 40))
            revision = int(rng.integers(1, 24 * 20)) if rng.random() < 0.3 else None
            out.append((f, int(day), lag, revision, round(float(rng.uniform(-5, 50)), 2)))
    return out


GRIDS = st.tuples(st.sampled_from(["1d", "1w"]), st.integers(2, 5), st.integers(1, 3))


@pytest.fixture(scope="module")
def wh(tmp_path_factory: pytest.TempPathFactory) -> Warehouse:
    return Warehouse(tmp_path_factory.mktemp("blocks") / "wh.duckdb")


def ingest(wh: Warehouse, rows: list[tuple], source: str) -> None:
    """Store `vintages` rows under `source` (a revision adds 1 to the value; the embedding's
    vectors are random)."""
    rng = np.random.default_rng(len(rows))
    scalars, vectors = [], []
    for f, day, first, revision, value in rows:
        observed = ORIGIN + dt.timedelta(days=day)
        for n, lag in enumerate([first] if revision is None else [first, first + revision]):
            known = observed + dt.timedelta(hours=lag)
            if f < len(SCALARS):
                scalars.append((SCALARS[f], observed, known, value + n))
            else:
                vectors.append((observed, known, rng.normal(size=DIM).astype(np.float32)))
    if scalars:
        frame = pl.DataFrame(
            scalars, schema=["field_path", "observed_at", "known_at", "value"], orient="row"
        )
        wh.ingest(frame, source=source, now=NOW, allow_outliers=True)
    if vectors:
        frame = pl.DataFrame(
            {
                "field_path": EMBEDDING,
                "observed_at": [v[0] for v in vectors],
                "known_at": [v[1] for v in vectors],
                "vector": [v[2].tolist() for v in vectors],
            },
            schema_overrides={"vector": pl.List(pl.Float32)},
        )
        wh.ingest(frame, source=source, now=NOW)


def reference(
    wh: Warehouse, source: str, manifest: CanvasManifest, edges: np.ndarray, layout: CanvasLayout
) -> dict[str, np.ndarray]:
    """The windows as placements give them, normalised with the manifest's statistics."""
    rows = wh.sql(
        "SELECT field_path, observed_at, known_at, value, vector FROM observations "
        "WHERE source = $s AND observed_at >= $lo AND observed_at < $hi AND known_at <= $hi "
        "ORDER BY field_path, observed_at, known_at",
        {"s": source, "lo": edges[0].item(), "hi": edges[-1].item()},
    )
    T, k, F = layout.T, manifest.cutoffs_per_step, layout.n_fields
    field = rows["field_path"].replace_strict(layout.index, return_dtype=pl.Int64).to_numpy()
    p = place(field, rows["observed_at"].to_numpy(), rows["known_at"].to_numpy(), edges, T, k)
    untrained = np.isin(np.arange(F), [layout.index[f] for f in manifest.untrained_fields])
    p, t, levels = stationary_placements(
        p.where(~untrained[p.field]),
        rows["value"].fill_null(0.0).to_numpy(),
        transform_codes(layout.fields),
    )
    mean = np.array([manifest.stats[f]["mean"] for f in layout.paths])
    std = np.array([manifest.stats[f]["std"] for f in layout.paths])
    value = ((t - mean[p.field]) / std[p.field]).astype(np.float32)
    vector = p.field == layout.index[EMBEDDING]
    scalar = ~vector & ~np.isnan(value)
    out = {
        "values": np.zeros((manifest.n_windows, T, F), dtype=np.float32),
        "presence": np.zeros((manifest.n_windows, T, F), dtype=np.uint8),
        "levels": np.full((manifest.n_windows, T, len(manifest.level_fields)), np.nan, np.float32),
        "vectors": np.zeros((manifest.n_windows, T, 1, DIM), dtype=np.float16),
    }
    out["values"][p.window[scalar], p.slot[scalar], p.field[scalar]] = value[scalar]
    out["presence"][
        p.window[scalar | vector], p.slot[scalar | vector], p.field[scalar | vector]
    ] = 1
    slot = {layout.index[f]: i for i, f in enumerate(manifest.level_fields)}
    diffed = np.isin(p.field, list(slot))
    level_slot = np.array([slot[f] for f in p.field[diffed]], dtype=np.int64)
    out["levels"][p.window[diffed], p.slot[diffed], level_slot] = levels[diffed]
    embeddings = rows["vector"].to_list()
    placed = np.array([embeddings[r] for r in p.row[vector]], dtype=np.float16).reshape(-1, DIM)
    out["vectors"][p.window[vector], p.slot[vector], 0] = placed
    return out


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.integers(0, 2**32 - 1), st.sampled_from([0.1, 0.5, 1.0]), GRIDS)
def test_blocks_of_windows_match_the_placements(wh, tmp_path_factory, seed, density, grid):
    step, T, per_step = grid
    source = f"blocks{next(_sources)}"
    ingest(wh, vintages(seed, density), source)
    layout = compile_layout(*SCALARS, EMBEDDING, T=T, step=step, include_latent=False)
    out = tmp_path_factory.mktemp("canvas") / "c"
    with pytest.MonkeyPatch.context() as patch:  # runs of one field, blocks of a few windows
        patch.setattr(materialize_module, "ROW_BUDGET", 20)
        patch.setattr(materialize_module, "PLACEMENT_BUDGET", 3 * T * layout.n_fields)
        manifest = materialize_canvas(
            wh,
            layout,
            out,
            start="2020-01-01",
            end="2020-04-30",
            sources=[source],
            shard_windows=50,
            cutoffs_per_step=per_step,
        )
    edges = np.load(out / "edges.npy")
    expected = reference(wh, source, manifest, edges, layout)
    for name, array in expected.items():
        got = np.concatenate([np.load(out / s["dir"] / f"{name}.npy") for s in manifest.shards])
        assert got.dtype == array.dtype and np.array_equal(got, array, equal_nan=True), name

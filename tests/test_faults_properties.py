"""Properties (hypothesis) of the two guarantees everything else leans on.

Point in time: for random observation vintages and random window grids, no value with
known_at after a window's cutoff reaches the window, and every window holds exactly the
best vintage known by its cutoff. Checked through `canvas.align.place`, the warehouse's
`as_of`, the full `materialize_canvas` from a DuckDB warehouse and `HeterogeneousDataset`.

Idempotent upsert: a batch ingested twice, or in any split and order, stores the same
content; a changed value adds a vintage and never removes one.

Each example writes under its own source name into one module warehouse, so examples
stay apart without a new DuckDB file each (`sources=` filters reads and materialization).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
from dataclasses import dataclass

import numpy as np
import polars as pl
import pytest
from faults_support import CPI, NOW
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from canvas.align import place, step_edges
from canvas.layout import compile_layout
from canvas.materialize import CanvasManifest, materialize_canvas
from warehouse.spec import DatasetSpec
from warehouse.store import Warehouse

pytestmark = pytest.mark.faults

# modelled as levels (canvas.stationary), so a canvas cell's value names the row it holds
PAYROLLS = "country_us.macro.labor.nonfarm_payrolls_change"
VIX = "financial.equities.vix"
FIELDS = (CPI, PAYROLLS, VIX)
ORIGIN = dt.datetime(2020, 1, 1)
US = "datetime64[us]"
_counter = itertools.count()


def fresh_source() -> str:
    return f"prop{next(_counter)}"


@pytest.fixture(scope="module")
def wh(tmp_path_factory: pytest.TempPathFactory) -> Warehouse:
    return Warehouse(tmp_path_factory.mktemp("properties") / "wh.duckdb")


# -- vintages ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Vintage:
    field: int
    observed: dt.datetime
    known: dt.datetime
    value: float


# known_at in whole days (so often exactly on a step edge) or in hours after observed_at
LAG_HOURS = st.one_of(st.integers(0, 150).map(lambda d: 24 * d), st.integers(0, 3600))
KEYS = st.lists(
    st.tuples(st.integers(0, len(FIELDS) - 1), st.integers(0, 420), LAG_HOURS),
    min_size=1,
    max_size=30,
    unique_by=lambda r: (r[0], r[1], r[1] * 24 + r[2]),
)


def vintages(keys: list[tuple[int, int, int]], values: list[float] | None = None) -> list[Vintage]:
    """One vintage per key; values 1, 2, 3, … unless given (unique: a value names its row)."""
    out = []
    for i, (f, day, lag) in enumerate(keys):
        observed = ORIGIN + dt.timedelta(days=day)
        value = float(i + 1) if values is None else values[i]
        out.append(Vintage(f, observed, observed + dt.timedelta(hours=lag), value))
    return out


def frame(rows: list[Vintage]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "field_path": [FIELDS[r.field] for r in rows],
            "observed_at": [r.observed for r in rows],
            "value": [r.value for r in rows],
            "known_at": [r.known for r in rows],
        },
        schema={
            "field_path": pl.Utf8,
            "observed_at": pl.Datetime("us"),
            "value": pl.Float64,
            "known_at": pl.Datetime("us"),
        },
    )


def reference(rows: list[Vintage], edges: np.ndarray, T: int) -> dict[tuple[int, int, int], int]:
    """Brute force: (window, slot, field) -> index of the best row known by the cutoff (the
    latest observation in the step, in its latest vintage known by edges[window + T])."""
    bounds = [e.astype(dt.datetime) for e in edges]
    out = {}
    for n in range(len(edges) - T):
        cutoff = bounds[n + T]
        for j in range(T):
            lo, hi = bounds[n + j], bounds[n + j + 1]
            for f in range(len(FIELDS)):
                seen = [
                    i
                    for i, r in enumerate(rows)
                    if r.field == f and lo <= r.observed < hi and r.known <= cutoff
                ]
                if seen:
                    out[(n, j, f)] = max(seen, key=lambda i: (rows[i].observed, rows[i].known))
    return out


def assert_point_in_time(
    got: dict[tuple[int, int, int], int], rows: list[Vintage], edges: np.ndarray, T: int
) -> None:
    """No placed value was known after its window's cutoff; the windows are exactly the
    reference's."""
    for (n, _, f), i in got.items():
        cutoff = edges[n + T].astype(dt.datetime)
        assert rows[i].known <= cutoff, (
            f"window {n} (cutoff {cutoff}) holds {FIELDS[f]} known at {rows[i].known}"
        )
    assert got == reference(rows, edges, T)


# June 10 known exactly at July 1 00:00, the cutoff of the last window of a grid to June 30
# (and an earlier value of that field, so that it has training statistics)
EDGE_CASE = [(0, 161, 21 * 24), (0, 40, 5 * 24), (1, 100, 0), (2, 5, 60 * 24)]

GRIDS = st.tuples(
    st.sampled_from(["2020-03-31", "2020-07-15", "2020-12-31", "2021-02-28"]),
    st.sampled_from(["1mo", "1w", "2w"]),
    st.integers(1, 5),
)


# -- point in time ---------------------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(KEYS, GRIDS)
def test_place_never_shows_a_value_before_it_was_known(keys, grid):
    end, step, T = grid
    rows = vintages(keys)
    edges = step_edges("2020-01-01", end, step)
    assume(len(edges) - 1 >= T)
    p = place(
        np.array([r.field for r in rows]),
        np.array([r.observed for r in rows], dtype=US),
        np.array([r.known for r in rows], dtype=US),
        edges,
        T,
    )
    got = {
        (int(n), int(j), int(f)): int(i)
        for n, j, f, i in zip(p.window, p.slot, p.field, p.row, strict=True)
    }
    assert_point_in_time(got, rows, edges, T)


def latest_known(rows: list[Vintage], t: dt.datetime) -> dict[tuple[str, dt.datetime], Vintage]:
    """Brute force: each period's latest vintage known by t."""
    best: dict[tuple[str, dt.datetime], Vintage] = {}
    for r in rows:
        key = (FIELDS[r.field], r.observed)
        if r.known <= t and (key not in best or r.known > best[key].known):
            best[key] = r
    return best


@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(KEYS, st.lists(st.integers(0, 500 * 24), min_size=1, max_size=4))
def test_as_of_sees_exactly_the_latest_vintage_known_by_t(wh, keys, probes):
    rows = vintages(keys)
    source = fresh_source()
    wh.ingest(frame(rows), source=source, now=NOW)
    times = [ORIGIN + dt.timedelta(hours=h) for h in probes] + [r.known for r in rows[:3]]
    for t in times:
        got = wh.as_of(t, list(FIELDS), sources=[source])
        assert (got["known_at"] <= t).all(), f"as_of({t}) returned a vintage known later"
        expected = latest_known(rows, t)
        seen = {
            (p, o): (v, k)
            for p, o, v, k in got.select(
                "field_path", "observed_at", "value", "known_at"
            ).iter_rows()
        }
        assert seen == {k: (r.value, r.known) for k, r in expected.items()}


@settings(
    max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(KEYS, st.sampled_from(["2020-06-30", "2020-12-31", "2021-03-31"]), st.integers(2, 4))
@example(keys=EDGE_CASE, end="2020-06-30", T=2)
def test_materialized_windows_never_show_a_value_before_it_was_known(
    wh, tmp_path_factory, keys, end, T
):
    rows = vintages(keys)
    source = fresh_source()
    wh.ingest(frame(rows), source=source, now=NOW)
    layout = compile_layout(*FIELDS, T=T, include_latent=False)
    out = tmp_path_factory.mktemp("canvas") / "c"
    manifest = materialize_canvas(
        wh,
        layout,
        out,
        start="2020-01-01",
        end=end,
        train_end=end,
        val_end=end,
        sources=[source],
    )
    edges = np.load(out / "edges.npy")
    values = np.concatenate([np.load(out / s["dir"] / "values.npy") for s in manifest.shards])
    presence = np.concatenate([np.load(out / s["dir"] / "presence.npy") for s in manifest.shards])
    got = _decode(values, presence, manifest.mean, manifest.std, layout, windows=None)
    untrained = {layout.index[p] for p in CanvasManifest.load(out).untrained_fields}
    _check(got, rows, edges, T, untrained=untrained, layout=layout)


@settings(max_examples=10, deadline=None)
@given(KEYS, st.sampled_from(["2020-06-30", "2020-12-31", "2021-03-31"]), st.integers(2, 4))
@example(keys=EDGE_CASE, end="2020-06-30", T=2)
def test_dataset_windows_never_show_a_value_before_it_was_known(keys, end, T):
    from canvas.dataset import HeterogeneousDataset

    rows = vintages(keys)
    layout = compile_layout(*FIELDS, T=T, include_latent=False)
    spec = DatasetSpec.from_fields("walk", {p: p for p in FIELDS})
    edges = step_edges("2020-01-01", end, layout.step)
    try:
        dataset = HeterogeneousDataset(layout, [(spec, frame(rows))], start="2020-01-01", end=end)
    except ValueError as err:  # no window holds anything: the reference must agree
        assert "no window with data" in str(err)
        assert reference(rows, edges, T) == {}
        return
    batch = dataset.__getitems__(list(range(len(dataset))))
    window_end = batch["window_end"].numpy().astype("datetime64[D]").astype(US)
    windows = np.searchsorted(edges, window_end) - (T - 1)
    got = _decode(
        batch["values"].numpy(),
        batch["presence"].numpy(),
        dataset.mean,
        dataset.std,
        layout,
        windows=windows,
    )
    untrained = {layout.index[p] for p in dataset.untrained_fields}
    _check(got, rows, edges, T, untrained=untrained, layout=layout, kept=set(windows.tolist()))


def _decode(values, presence, mean, std, layout, *, windows) -> dict[tuple[int, int, int], int]:
    """(window, slot, field) -> row index, from de-normalised values (a value is 1 + row)."""
    got = {}
    for b, j, f in zip(*np.nonzero(presence), strict=True):
        raw = float(values[b, j, f]) * float(std[f]) + float(mean[f])
        index = round(raw) - 1
        assert abs(raw - (index + 1)) < 1e-3, f"value {raw} is no row's"
        n = int(b) if windows is None else int(windows[b])
        got[(n, int(j), int(f))] = index
    return got


def _check(got, rows, edges, T, *, untrained, layout, kept=None) -> None:
    for (n, _, f), i in got.items():  # the property itself, with a readable failure
        cutoff = edges[n + T].astype(dt.datetime)
        assert rows[i].known <= cutoff, (
            f"window {n} (cutoff {cutoff}) holds {layout.paths[f]} known at {rows[i].known}"
        )
        assert FIELDS[rows[i].field] == layout.paths[f]
    expected = {
        key: i
        for key, i in reference(rows, edges, T).items()
        if layout.index[FIELDS[key[2]]] not in untrained and (kept is None or key[0] in kept)
    }
    expected = {(n, j, layout.index[FIELDS[f]]): i for (n, j, f), i in expected.items()}
    assert got == expected


# -- idempotent upsert ---------------------------------------------------------------------------


def stored(wh: Warehouse, source: str) -> pl.DataFrame:
    """Every stored vintage of `source`, sorted (what the content hash covers, sans source)."""
    return wh.sql(
        "SELECT field_path, observed_at, value, known_at FROM observations "
        "WHERE source = $s ORDER BY ALL",
        {"s": source},
    )


def assert_vintage_chains(wh: Warehouse) -> None:
    """Every stored vintage is unique and superseded by exactly the next one known."""
    ((rows, keys, broken),) = wh.sql(
        "SELECT count(*), count(DISTINCT (field_path, observed_at, source, known_at)), "
        "count(*) FILTER (superseded_at IS DISTINCT FROM next) FROM (SELECT *, lead(known_at) "
        "OVER (PARTITION BY field_path, observed_at, source ORDER BY known_at) AS next "
        "FROM observations)"
    ).rows()
    assert (rows, broken) == (keys, 0)


def digest(frame: pl.DataFrame) -> str:
    return hashlib.sha256(frame.write_csv().encode()).hexdigest()[:16]


SPLITS = st.lists(st.integers(0, 30), max_size=4)


def chunks(rows: list[Vintage], order: list[int], cuts: list[int]) -> list[list[Vintage]]:
    shuffled = [rows[i] for i in order]
    bounds = sorted({0, len(rows), *(c % (len(rows) + 1) for c in cuts)})
    return [shuffled[a:b] for a, b in itertools.pairwise(bounds) if b > a]


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(KEYS, st.data())
def test_a_batch_ingested_again_in_any_split_changes_nothing(wh, keys, data):
    # values from a small set: repeated values (no news) included
    values = data.draw(
        st.lists(st.sampled_from([1.0, 2.0, 3.0]), min_size=len(keys), max_size=len(keys))
    )
    rows = vintages(keys, values)
    source = fresh_source()
    first = wh.ingest(frame(rows), source=source, now=NOW)
    assert first.rows_inserted == len(rows)
    before, total = stored(wh, source), wh.content_hash()
    order = data.draw(st.permutations(range(len(rows))))
    for part in chunks(rows, order, data.draw(SPLITS)):
        report = wh.ingest(frame(part), source=source, now=NOW)
        assert (report.rows_inserted, report.rows_revised) == (0, 0)
    assert stored(wh, source).equals(before)
    assert wh.content_hash() == total


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(KEYS, st.data())
def test_any_split_and_order_stores_what_one_batch_stores(wh, keys, data):
    rows = vintages(keys)  # every vintage of a period has its own value
    once, split = fresh_source(), fresh_source()
    wh.ingest(frame(rows), source=once, now=NOW)
    order = data.draw(st.permutations(range(len(rows))))
    for part in chunks(rows, order, data.draw(SPLITS)):
        wh.ingest(frame(part), source=split, now=NOW)
    assert digest(stored(wh, split)) == digest(stored(wh, once))
    wh.ingest(frame(rows), source=split, now=NOW)  # and once more: nothing changes
    assert digest(stored(wh, split)) == digest(stored(wh, once))
    assert_vintage_chains(wh)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(KEYS, st.data())
def test_vintages_in_any_arrival_order_keep_every_point_in_time_view(wh, keys, data):
    """Values from a small set, so a vintage often repeats the one before it (revised
    and revised back): whatever the split and order of arrival, as_of(t) at every
    vintage's release (and just before it) answers what was known at t."""
    values = data.draw(
        st.lists(st.sampled_from([1.0, 2.0, 3.0]), min_size=len(keys), max_size=len(keys))
    )
    rows = vintages(keys, values)
    source = fresh_source()
    order = data.draw(st.permutations(range(len(rows))))
    for part in chunks(rows, order, data.draw(SPLITS)):
        wh.ingest(frame(part), source=source, now=NOW)
    assert_vintage_chains(wh)
    probes = {r.known for r in rows} | {r.known - dt.timedelta(microseconds=1) for r in rows}
    for t in sorted(probes):
        got = wh.as_of(t, list(FIELDS), sources=[source])
        seen = dict(
            zip(
                zip(got["field_path"], got["observed_at"], strict=True),
                got["value"],
                strict=True,
            )
        )
        assert seen == {k: r.value for k, r in latest_known(rows, t).items()}, f"as_of({t})"


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(KEYS, st.data())
def test_a_changed_value_adds_a_vintage_and_removes_none(wh, keys, data):
    rows = vintages(keys)
    source = fresh_source()
    wh.ingest(frame(rows), source=source, now=NOW)
    before = stored(wh, source)
    changed = sorted(data.draw(st.sets(st.integers(0, len(rows) - 1), min_size=1)))
    revised = [
        Vintage(r.field, r.observed, r.known, 100.0 + i) if i in changed else r
        for i, r in enumerate(rows)
    ]
    later = NOW + dt.timedelta(days=1)
    report = wh.ingest(frame(revised), source=source, now=later)
    assert report.rows_revised == len(changed)
    after = stored(wh, source)
    assert len(after) == len(before) + len(changed)
    assert before.join(after, on=before.columns, how="anti").is_empty(), "a vintage was removed"
    assert_vintage_chains(wh)
    latest = wh.as_of(later + dt.timedelta(days=1), list(FIELDS), sources=[source])
    by_period = {
        (p, o): v for p, o, v in latest.select("field_path", "observed_at", "value").iter_rows()
    }
    # the restatement of the last-known changed vintage of a period is its latest value
    for (f, observed), group in itertools.groupby(
        sorted((rows[i].field, rows[i].observed, rows[i].known, i) for i in changed),
        key=lambda x: x[:2],
    ):
        last = max(group, key=lambda x: x[2])
        assert by_period[(FIELDS[f], observed)] == 100.0 + last[3]


def test_out_of_order_vintages_with_a_repeated_value_keep_their_point_in_time_view(wh):
    jan = dt.datetime(2020, 1, 1)
    v1 = Vintage(0, jan, dt.datetime(2020, 2, 10), 5.0)
    v2 = Vintage(0, jan, dt.datetime(2020, 3, 10), 7.0)  # revised ...
    v3 = Vintage(0, jan, dt.datetime(2020, 4, 10), 5.0)  # ... and revised back
    once, late = fresh_source(), fresh_source()
    wh.ingest(frame([v1, v2, v3]), source=once, now=NOW)
    for part in ([v1], [v3], [v2]):  # the middle vintage arrives last
        wh.ingest(frame(part), source=late, now=NOW)
    t = dt.datetime(2020, 5, 1)
    assert (
        wh.as_of(t, CPI, sources=[late])["value"].to_list()
        == wh.as_of(t, CPI, sources=[once])["value"].to_list()
        == [5.0]
    )

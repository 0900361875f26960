"""HeterogeneousDataset / build_mixed_dataloader: the seed's mixed-source canvas batches."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest
import torch

from canvas import DatasetSpec, InputSpec, OutputSpec
from canvas.dataset import HeterogeneousDataset
from canvas.layout import compile_layout
from ingest.synthetic import SyntheticWorldConfig, generate_world

CPI = "country_us.macro.inflation.headline_cpi"
GDP = "country_us.macro.output.gdp_nowcast"
VIX = "financial.equities.vix"
CONTRACT = {"values", "presence", "target_weight", "presence_mask", "window_end"}


def spec_for(name: str, frame: pl.DataFrame) -> DatasetSpec:
    """A spec keyed by the last path segment of every field in `frame`."""
    paths = frame["field_path"].unique().sort().to_list()
    return DatasetSpec.from_fields(name, {p.rsplit(".", 1)[1]: p for p in paths})


@pytest.fixture(scope="module")
def world():
    return generate_world(SyntheticWorldConfig(start="2015-01-01", end="2019-12-31"))


@pytest.fixture(scope="module")
def fred_spec(world):
    return spec_for("FRED", world.sources["fred"])


@pytest.fixture(scope="module")
def yahoo_spec(world):
    return spec_for("Yahoo", world.sources["yahoo"])


@pytest.fixture(scope="module")
def bound():
    return compile_layout("country_us.macro", "financial", T=12, d_model=64)


@pytest.fixture(scope="module")
def mixed(bound, world, fred_spec, yahoo_spec):
    return HeterogeneousDataset(
        bound, [(fred_spec, world.sources["fred"]), (yahoo_spec, world.sources["yahoo"])]
    )


def window_at(ds: HeterogeneousDataset, month: str) -> int:
    """Index of the window whose last step starts at `month` (YYYY-MM-01)."""
    (hits,) = np.nonzero(ds.window_end == np.datetime64(month, "us"))
    assert len(hits) == 1
    return int(hits[0])


def raw(frame: pl.DataFrame, path: str, **ranges: tuple[str, str]) -> pl.DataFrame:
    """Rows of `path` with each named column in [lo, hi)."""
    out = frame.filter(pl.col("field_path") == path)
    for column, (lo, hi) in ranges.items():
        out = out.filter(
            pl.col(column) >= dt.datetime.fromisoformat(lo),
            pl.col(column) < dt.datetime.fromisoformat(hi),
        )
    return out.sort("observed_at", "known_at")


def test_the_seed_snippet_runs_as_written(bound, world, fred_spec, yahoo_spec):
    from canvas import build_mixed_dataloader

    fred_data, yahoo_data = world.sources["fred"], world.sources["yahoo"]
    loader = build_mixed_dataloader(
        bound,
        sources=[(fred_spec, fred_data), (yahoo_spec, yahoo_data)],
        batch_size=32,
    )
    batch = next(iter(loader))
    assert set(batch) == CONTRACT  # no vector field on this layout
    B, T, F = 32, bound.T, bound.n_fields
    for key in ("values", "presence", "target_weight"):
        assert batch[key].shape == (B, T, F) and batch[key].dtype == torch.float32
    assert batch["presence_mask"].shape == (B, T, bound.H * bound.W)
    assert batch["presence_mask"].dtype == torch.float32
    assert batch["window_end"].shape == (B,) and batch["window_end"].dtype == torch.int64
    assert torch.isfinite(batch["values"]).all()
    assert set(batch["presence"].unique().tolist()) == {0.0, 1.0}
    # absent positions carry no value
    assert (batch["values"][batch["presence"] == 0] == 0).all()
    assert sum(len(b["values"]) for b in loader) == len(loader.dataset)


def test_zero_overlap_sources_fill_disjoint_positions_of_the_same_samples(
    bound, mixed, fred_spec, yahoo_spec
):
    fred_f = [bound.index[p] for p in fred_spec.field_paths]
    yahoo_f = [bound.index[p] for p in yahoo_spec.field_paths]
    fred_pos = np.concatenate([bound.positions(p) for p in fred_spec.field_paths])
    yahoo_pos = np.concatenate([bound.positions(p) for p in yahoo_spec.field_paths])
    assert not set(fred_pos) & set(yahoo_pos)
    batch = mixed.__getitems__(list(range(0, len(mixed), max(1, len(mixed) // 32)))[:32])
    mask = batch["presence_mask"].numpy()
    # every sample carries both sources, on their own positions only
    assert (mask[:, :, fred_pos].sum(axis=(1, 2)) > 0).all()
    assert (mask[:, :, yahoo_pos].sum(axis=(1, 2)) > 0).all()
    others = np.setdiff1d(np.arange(mask.shape[-1]), np.r_[fred_pos, yahoo_pos])
    assert mask[:, :, others].sum() == 0
    presence = batch["presence"].numpy()
    assert presence[:, :, fred_f].sum() > 0 and presence[:, :, yahoo_f].sum() > 0


def test_values_are_aligned_on_dates_not_rows(bound, mixed, world):
    fred, yahoo = world.sources["fred"], world.sources["yahoo"]
    n = window_at(mixed, "2018-06-01")
    sample = mixed[n]
    cpi, vix = bound.index[CPI], bound.index[VIX]
    mean, std = mixed.mean, mixed.std
    # May 2018 CPI (slot T-2) is released mid June: known by the cutoff of July 1
    may = raw(fred, CPI, observed_at=("2018-05-01", "2018-06-01"))
    assert sample["presence"][-2, cpi] == 1
    assert sample["values"][-2, cpi] * std[cpi] + mean[cpi] == pytest.approx(may["value"][-1])
    # VIX of June 2018 (slot T-1): the latest close of the month, known the same day
    june = raw(yahoo, VIX, observed_at=("2018-06-01", "2018-07-01"))
    assert june["observed_at"][-1] == dt.datetime(2018, 6, 29)
    assert sample["values"][-1, vix] * std[vix] + mean[vix] == pytest.approx(june["value"][-1])
    # twelve months back (slot 0): July 2017
    july = raw(yahoo, VIX, observed_at=("2017-07-01", "2017-08-01"))
    assert sample["values"][0, vix] * std[vix] + mean[vix] == pytest.approx(july["value"][-1])
    assert sample["window_end"] == (dt.date(2018, 6, 1) - dt.date(1970, 1, 1)).days


def test_a_value_known_after_the_cutoff_is_absent(bound, world, fred_spec):
    fred = world.sources["fred"]
    late = dt.datetime(2018, 9, 15)
    moved = fred.with_columns(
        pl.when((pl.col("field_path") == CPI) & (pl.col("observed_at") == dt.datetime(2018, 3, 1)))
        .then(pl.lit(late))
        .otherwise(pl.col("known_at"))
        .alias("known_at")
    )
    ds = HeterogeneousDataset(bound, [(fred_spec, moved)])
    cpi, T = bound.index[CPI], bound.T
    # the window's last step's own CPI is released after its cutoff
    assert ds[window_at(ds, "2018-01-01")]["presence"][-1, cpi] == 0
    # March 2018 is in the windows ending Mar .. Aug 2018 (cutoff <= Sep 1): absent
    for month, back in [("2018-03-01", 0), ("2018-06-01", 3), ("2018-08-01", 5)]:
        assert ds[window_at(ds, month)]["presence"][T - 1 - back, cpi] == 0
    # from the window with cutoff Oct 1 on, it is known
    assert ds[window_at(ds, "2018-09-01")]["presence"][T - 1 - 6, cpi] == 1
    # the unmoved April value is known in the window ending in May (cutoff June 1)
    assert ds[window_at(ds, "2018-05-01")]["presence"][T - 1 - 1, cpi] == 1


def test_a_quarterly_field_is_present_only_at_its_quarter_step(bound, mixed):
    gdp = bound.index[GDP]
    T = bound.T
    seen = 0
    for n in range(len(mixed)):
        present = mixed[n]["presence"][:, gdp].numpy()
        end_month = mixed.window_end[n].astype("datetime64[M]").astype(np.int64)
        month_of_slot = (end_month - (T - 1) + np.arange(T)) % 12  # 0 = January
        assert (present[month_of_slot % 3 != 0] == 0).all()
        seen += present.sum()
    assert seen > 0


def test_normalisation_uses_the_training_period_only(bound, world, yahoo_spec):
    yahoo = world.sources["yahoo"]
    train_end = "2018-01-01"
    shocked = yahoo.with_columns(
        pl.when(pl.col("observed_at") >= dt.datetime(2018, 6, 1))
        .then(pl.col("value") * 100)
        .otherwise(pl.col("value"))
        .alias("value")
    )
    a = HeterogeneousDataset(bound, [(yahoo_spec, yahoo)], train_end=train_end)
    b = HeterogeneousDataset(bound, [(yahoo_spec, shocked)], train_end=train_end)
    assert a.stats == b.stats
    everything = HeterogeneousDataset(bound, [(yahoo_spec, shocked)])
    assert everything.stats[VIX] != a.stats[VIX]
    train = raw(yahoo, VIX, observed_at=("2015-01-01", train_end))
    assert a.stats[VIX]["mean"] == pytest.approx(train["value"].mean())
    assert a.stats[VIX]["std"] == pytest.approx(train["value"].std(ddof=0))
    assert a.stats[VIX]["count"] == len(train)
    assert a.stats[CPI] == {"mean": 0.0, "std": 1.0, "count": 0}  # no data: identity


def test_splits_follow_window_cutoffs(bound, world, fred_spec, yahoo_spec):
    sources = [(fred_spec, world.sources["fred"]), (yahoo_spec, world.sources["yahoo"])]
    dates = {"train_end": "2017-06-01", "val_end": "2018-06-01"}
    everything = HeterogeneousDataset(bound, sources, **dates)
    parts = {s: HeterogeneousDataset(bound, sources, split=s, **dates) for s in ("train", "val")}
    parts["test"] = HeterogeneousDataset(bound, sources, split="test", **dates)
    ends = {s: d.window_end for s, d in parts.items()}
    # monthly steps: a window's cutoff is the month after its last step, so a training
    # window's last step is before train_end and it sees nothing published after it
    assert ends["train"].max() == np.datetime64("2017-05-01")
    assert ends["val"].min() == np.datetime64("2017-06-01")
    assert ends["val"].max() == np.datetime64("2018-05-01")
    assert ends["test"].min() == np.datetime64("2018-06-01")
    joined = np.concatenate([ends["train"], ends["val"], ends["test"]])
    assert (joined == everything.window_end).all()
    # one set of statistics for every split
    assert parts["test"].stats == parts["train"].stats == everything.stats
    with pytest.raises(ValueError, match="split='val' needs train_end"):
        HeterogeneousDataset(bound, sources, split="val")


def test_wide_data_is_known_at_its_date_and_transformed(bound, world):
    monthly = (
        raw(world.sources["fred"], CPI)
        .group_by("observed_at")
        .agg(pl.col("value").last())
        .sort("observed_at")
        .rename({"observed_at": "date", "value": "cpi"})
        .with_columns(pl.col("date").dt.date(), extra=pl.lit(1.0))
    )
    spec = DatasetSpec(
        "wide",
        input_specs=[InputSpec("cpi", "cpi", CPI, transform=lambda x: np.log(x + 10.0))],
        output_specs=[OutputSpec("cpi", "cpi", CPI)],
    )
    ds = HeterogeneousDataset(bound, [(spec, monthly)])
    cpi = bound.index[CPI]
    sample = ds[window_at(ds, "2018-06-01")]
    june = monthly.filter(pl.col("date") == dt.date(2018, 6, 1))["cpi"][0]
    assert sample["presence"][-1, cpi] == 1  # known at its date, so inside its own step
    got = sample["values"][-1, cpi] * ds.std[cpi] + ds.mean[cpi]
    assert float(got) == pytest.approx(np.log(june + 10.0), rel=1e-6)
    assert ds.stats[CPI]["mean"] == pytest.approx(np.log(monthly["cpi"] + 10.0).mean())


def test_bad_inputs_fail_with_clear_errors(bound, world, fred_spec):
    fred = world.sources["fred"]
    wide = pl.DataFrame({"date": [dt.date(2018, 1, 1)], "cpi": [2.0], "other": [1.0]})
    two = DatasetSpec.from_fields("wide", {"cpi": CPI, "gdp": GDP})
    with pytest.raises(ValueError, match=r"dataset 'wide'.*\['gdp'\].*available columns"):
        HeterogeneousDataset(bound, [(two, wide)])
    one = DatasetSpec.from_fields("FRED", {"cpi": CPI})
    with pytest.raises(ValueError, match=r"dataset 'FRED'.*does not declare.*unemployment_rate"):
        HeterogeneousDataset(bound, [(one, fred)])
    with pytest.raises(ValueError, match="duplicate input key 'cpi'"):
        DatasetSpec("dup", input_specs=[InputSpec("cpi", "a", CPI), InputSpec("cpi", "b", GDP)])
    with pytest.raises(ValueError, match="one to one"):
        HeterogeneousDataset(bound, [(DatasetSpec.from_fields("d", {"a": CPI, "b": CPI}), wide)])
    small = compile_layout("financial", T=12)
    with pytest.raises(ValueError, match=r"not on the layout.*compile the layout with them"):
        HeterogeneousDataset(small, [(fred_spec, fred)])
    with pytest.raises(ValueError, match="unique"):
        HeterogeneousDataset(bound, [(fred_spec, fred), (fred_spec, fred)])


def test_source_weights_change_sampling_frequencies(bound, world, fred_spec, yahoo_spec):
    # FRED covers 2015-2016, Yahoo 2017-2019: windows hold one source, or both at the seam
    fred = world.sources["fred"].filter(pl.col("observed_at") < dt.datetime(2017, 1, 1))
    yahoo = world.sources["yahoo"].filter(pl.col("observed_at") >= dt.datetime(2017, 1, 1))
    sources = [(fred_spec, fred), (yahoo_spec, yahoo)]
    fred_f = [bound.index[p] for p in fred_spec.field_paths]

    def fred_share(weights: dict[str, float]) -> tuple[float, float]:
        from canvas import build_mixed_dataloader

        loader = build_mixed_dataloader(
            bound,
            sources=sources,
            batch_size=64,
            source_weights=weights,
            num_samples=6400,
            generator=torch.Generator().manual_seed(0),
        )
        has_fred = [b["presence"][:, :, fred_f].amax(dim=(1, 2)) for b in loader]
        w = loader.dataset.sampling_weights(weights)
        expected = w[loader.dataset._source[:, :, fred_f].any(axis=(1, 2))].sum() / w.sum()
        return float(torch.cat(has_fred).mean()), float(expected)

    fred_heavy, expected_heavy = fred_share({"FRED": 10.0, "Yahoo": 1.0})
    yahoo_heavy, expected_light = fred_share({"FRED": 1.0, "Yahoo": 10.0})
    assert fred_heavy == pytest.approx(expected_heavy, abs=0.03)
    assert yahoo_heavy == pytest.approx(expected_light, abs=0.03)
    assert fred_heavy > 0.75 and yahoo_heavy < 0.5


def test_windows_without_any_value_are_dropped(bound, world, fred_spec, yahoo_spec):
    fred = world.sources["fred"].filter(pl.col("observed_at") < dt.datetime(2016, 1, 1))
    yahoo = world.sources["yahoo"].filter(pl.col("observed_at") >= dt.datetime(2018, 1, 1))
    ds = HeterogeneousDataset(bound, [(fred_spec, fred), (yahoo_spec, yahoo)])
    presence = ds.__getitems__(list(range(len(ds))))["presence"]
    assert (presence.sum(dim=(1, 2)) > 0).all()
    # 2015-01 .. 2019-12 is 60 steps: 49 windows; those inside 2016-2017 hold nothing
    assert len(ds) < 49
    assert not (
        (ds.window_end > np.datetime64("2016-12-01"))
        & (ds.window_end < np.datetime64("2018-01-01"))
    ).any()


def test_presence_mask_and_target_weight(bound, world):
    fred = world.sources["fred"]
    loss = torch.nn.functional.huber_loss
    spec = DatasetSpec(
        "FRED",
        input_specs=[InputSpec("cpi", "cpi", CPI), InputSpec("gdp", "gdp", GDP)],
        output_specs=[OutputSpec("gdp", "gdp", GDP, loss_weight=2.5, loss=loss)],
    )
    ds = HeterogeneousDataset(bound, [(spec, fred.filter(pl.col("field_path").is_in([CPI, GDP])))])
    batch = ds.__getitems__(list(range(len(ds))))
    presence = batch["presence"]
    assert np.array_equal(batch["presence_mask"].numpy(), bound.expand(presence.numpy()))
    cpi, gdp = bound.index[CPI], bound.index[GDP]
    assert presence[:, :, cpi].sum() > 0 and presence[:, :, gdp].sum() > 0
    assert (batch["target_weight"][:, :, cpi] == 0).all()  # input only
    assert torch.equal(batch["target_weight"][:, :, gdp], 2.5 * presence[:, :, gdp])
    assert ds.output_losses == {gdp: loss}
    one = ds[3]
    assert all(torch.equal(one[k], batch[k][3]) for k in batch)


def test_the_later_known_value_wins_across_sources(bound):
    day = dt.datetime(2018, 3, 15)
    rows = {
        "field_path": [VIX] * 12,
        "observed_at": [day + dt.timedelta(days=30 * i) for i in range(12)],
    }
    early = pl.DataFrame({**rows, "value": [1.0] * 12, "known_at": rows["observed_at"]})
    late = early.with_columns(pl.col("value") * 3, pl.col("known_at") + dt.timedelta(days=1))
    a = DatasetSpec.from_fields("early", {"vix": VIX})
    b = DatasetSpec(
        "late",
        input_specs=[InputSpec("vix", "vix", VIX)],
        output_specs=[OutputSpec("vix", "vix", VIX, loss_weight=4.0)],
    )
    ds = HeterogeneousDataset(bound, [(b, late), (a, early)])
    vix = bound.index[VIX]
    batch = ds.__getitems__(list(range(len(ds))))
    present = batch["presence"][:, :, vix] == 1
    got = batch["values"][:, :, vix][present] * ds.std[vix] + ds.mean[vix]
    assert torch.allclose(got, torch.tensor(3.0))
    assert (batch["target_weight"][:, :, vix][present] == 4.0).all()


def test_vector_fields_fill_the_vectors_tensor():
    layout = compile_layout("narratives", T=3)
    days = [dt.datetime(2020, 1, 1) + dt.timedelta(days=d) for d in range(0, 120, 10)]
    emb = np.random.default_rng(0).normal(size=(len(days), 384)).astype(np.float32)
    frame = pl.DataFrame(
        {
            "field_path": ["narratives.news.embedding"] * len(days)
            + ["narratives.news.sentiment"] * len(days),
            "observed_at": days * 2,
            "value": [None] * len(days) + list(np.linspace(-1, 1, len(days))),
            "vector": [*emb.tolist(), *[None] * len(days)],
            "known_at": [d + dt.timedelta(hours=23) for d in days] * 2,
        },
        schema_overrides={"vector": pl.List(pl.Float32)},
    )
    spec = DatasetSpec.from_fields(
        "news", {"embedding": "narratives.news.embedding", "sentiment": "narratives.news.sentiment"}
    )
    ds = HeterogeneousDataset(layout, [(spec, frame)])
    batch = ds.__getitems__([0])
    e = layout.index["narratives.news.embedding"]
    assert batch["vectors"].shape == (1, 3, 1, 384)
    assert batch["presence"][0, :, e].tolist() == [1.0, 1.0, 1.0]
    assert (batch["values"][0, :, e] == 0).all()
    # the window covers Jan..Mar 2020: the last embedding of each month
    last_of_month = [3, 5, 9]  # Jan 31, Feb 20, Mar 31
    assert np.array_equal(batch["vectors"][0, :, 0].numpy(), emb[last_of_month])
    assert (
        batch["presence_mask"][0, 0, layout.positions("narratives.news.embedding")].tolist()
        == [1.0] * 4
    )

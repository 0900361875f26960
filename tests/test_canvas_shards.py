"""ShardDataset / build_shard_dataloader over materialized canvas shards."""

from __future__ import annotations

import datetime as dt
import pickle

import numpy as np
import polars as pl
import pytest
import torch

from canvas.dataset import HeterogeneousDataset
from canvas.layout import compile_layout
from canvas.materialize import CanvasManifest, materialize_canvas
from canvas.shards import LayoutMismatchError, ShardDataset, build_shard_dataloader, denormalise
from ingest.synthetic import SyntheticWorldConfig, generate_world
from warehouse.spec import DatasetSpec
from warehouse.store import Warehouse

CPI = "country_us.macro.inflation.headline_cpi"
SHARD = 7  # windows per shard: several shards, batches cross their boundaries
DATES = {"start": "2016-01-01", "end": "2019-12-31", "train_end": "2018-01-01"}
DATES_VAL = {**DATES, "val_end": "2019-01-01"}


@pytest.fixture(scope="module")
def world():
    return generate_world(SyntheticWorldConfig(start="2016-01-01", end="2019-12-31"))


@pytest.fixture(scope="module")
def layout():
    return compile_layout("country_us.macro", "financial", T=6)


@pytest.fixture(scope="module")
def canvas_dir(tmp_path_factory, world, layout):
    root = tmp_path_factory.mktemp("shards")
    wh = Warehouse(root / "wh.duckdb")
    for name in ("fred", "yahoo"):
        wh.ingest(world.sources[name], source=name)
    materialize_canvas(wh, layout, root / "canvas", shard_windows=SHARD, **DATES_VAL)
    return root / "canvas"


def stored(directory, manifest: CanvasManifest) -> dict[str, np.ndarray]:
    """Every shard's arrays, concatenated in window order."""
    return {
        name: np.concatenate(
            [np.load(directory / s["dir"] / f"{name}.npy") for s in manifest.shards]
        )
        for name in ("values", "presence")
    }


def test_batches_equal_the_materialized_arrays(canvas_dir, layout):
    ds = ShardDataset(canvas_dir, split=None, layout=layout)
    arrays = stored(canvas_dir, ds.manifest)
    assert len(ds) == ds.manifest.n_windows == len(arrays["values"])
    assert len(ds.manifest.shards) > 3
    idx = [SHARD - 2, SHARD - 1, SHARD, SHARD + 1, 2 * SHARD + 3, 0, len(ds) - 1, 3]
    batch = ds.__getitems__(idx)
    assert set(batch) == {"values", "presence", "target_weight", "presence_mask", "window_end"}
    presence = arrays["presence"][idx].astype(np.float32)
    assert np.array_equal(batch["values"].numpy(), arrays["values"][idx])
    assert np.array_equal(batch["presence"].numpy(), presence)
    assert np.array_equal(batch["target_weight"].numpy(), presence * layout.loss_weights)
    assert np.array_equal(batch["presence_mask"].numpy(), layout.expand(presence))
    assert batch["presence_mask"].shape == (len(idx), layout.T, layout.H * layout.W)
    ends = np.load(canvas_dir / "window_end.npy")[idx].astype("datetime64[D]").astype(np.int64)
    assert np.array_equal(batch["window_end"].numpy(), ends)
    assert all(b.dtype == torch.float32 for k, b in batch.items() if k != "window_end")
    one = ds[SHARD]
    assert all(torch.equal(one[k], batch[k][2]) for k in batch)


def test_splits_cover_all_windows_without_overlap(canvas_dir, layout):
    everything = ShardDataset(canvas_dir, split=None, layout=layout)
    all_ends = everything.__getitems__(range(len(everything)))["window_end"]
    parts = [ShardDataset(canvas_dir, split=s, layout=layout) for s in ("train", "val", "test")]
    assert all(len(p) > 0 for p in parts)
    ends = [p.__getitems__(range(len(p)))["window_end"] for p in parts]
    assert torch.equal(torch.cat(ends), all_ends)
    train_end = (dt.date(2018, 1, 1) - dt.date(1970, 1, 1)).days
    assert ends[0].max() < train_end <= ends[1].min()  # train cutoffs are <= train_end
    # a split-local index never reaches another split
    with pytest.raises(IndexError):
        parts[0].__getitems__([len(parts[0])])


def test_a_loader_epoch_returns_the_split_in_order(canvas_dir, layout):
    loader = build_shard_dataloader(canvas_dir, layout, "val", batch_size=5, shuffle=False)
    first, end = loader.dataset.manifest.splits["val"]
    values = torch.cat([b["values"] for b in loader]).numpy()
    assert np.array_equal(values, stored(canvas_dir, loader.dataset.manifest)["values"][first:end])
    shuffled = build_shard_dataloader(
        canvas_dir, layout, "val", batch_size=5, generator=torch.Generator().manual_seed(1)
    )
    ends = torch.cat([b["window_end"] for b in shuffled])
    assert sorted(ends.tolist()) == torch.cat([b["window_end"] for b in loader]).tolist()


def test_a_layout_hash_mismatch_is_a_clear_error(canvas_dir, layout):
    other = compile_layout("country_us.macro", "financial", T=4)
    with pytest.raises(LayoutMismatchError, match="shards at .* were made with layout") as err:
        ShardDataset(canvas_dir, layout=other)
    assert layout.layout_hash() in str(err.value) and other.layout_hash() in str(err.value)


def test_without_a_layout_the_manifest_layout_is_rebuilt(canvas_dir, layout):
    ds = ShardDataset(canvas_dir)
    assert ds.layout.layout_hash() == layout.layout_hash()  # compile_layout defaults


def test_pickling_sends_no_data(canvas_dir, layout):
    ds = ShardDataset(canvas_dir, split="train", layout=layout)
    blob = pickle.dumps(ds)
    assert len(blob) < 200_000
    again = pickle.loads(blob)
    a, b = ds.__getitems__([1, 9]), again.__getitems__([1, 9])
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_shards_agree_with_the_in_memory_dataset_and_denormalise(canvas_dir, layout, world):
    fred, yahoo = world.sources["fred"], world.sources["yahoo"]
    specs = [
        (DatasetSpec.from_fields(name, {p: p for p in frame["field_path"].unique()}), frame)
        for name, frame in (("fred", fred), ("yahoo", yahoo))
    ]
    memory = HeterogeneousDataset(layout, specs, **DATES)
    shards = ShardDataset(canvas_dir, split=None, layout=layout)
    assert memory.stats.keys() == shards.manifest.stats.keys()
    for path, s in memory.stats.items():
        assert s["count"] == shards.manifest.stats[path]["count"]
        assert s["mean"] == pytest.approx(shards.manifest.stats[path]["mean"])
    # the in-memory dataset drops windows without data; here every window has some
    assert len(memory) == len(shards)
    a = memory.__getitems__(range(len(memory)))
    b = shards.__getitems__(range(len(shards)))
    assert torch.equal(a["presence"], b["presence"])
    assert torch.allclose(a["values"], b["values"], atol=1e-5)
    assert torch.equal(a["window_end"], b["window_end"])

    # denormalise: back to the source's units, for arrays and tensors
    cpi = layout.index[CPI]
    n = int(
        np.flatnonzero(b["window_end"].numpy() == (dt.date(2018, 6, 1) - dt.date(1970, 1, 1)).days)[
            0
        ]
    )
    may = fred.filter(
        (pl.col("field_path") == CPI) & (pl.col("observed_at") == dt.datetime(2018, 5, 1))
    )["value"][-1]
    back = denormalise(b["values"], shards.manifest)
    assert isinstance(back, torch.Tensor)
    assert float(back[n, -2, cpi]) == pytest.approx(may, abs=1e-4)
    assert denormalise(b["values"].numpy(), shards)[n, -2, cpi] == pytest.approx(may, abs=1e-4)
    assert denormalise(a["values"], memory)[n, -2, cpi] == pytest.approx(may, abs=1e-4)


def test_a_canvas_cut_inside_steps_serves_step_ends_by_default(tmp_path, world, layout):
    wh = Warehouse(tmp_path / "wh.duckdb")
    for name in ("fred", "yahoo"):
        wh.ingest(world.sources[name], source=name)
    monthly = tmp_path / "monthly"
    weekly = tmp_path / "weekly"
    materialize_canvas(wh, layout, monthly, shard_windows=SHARD, **DATES_VAL)
    materialize_canvas(wh, layout, weekly, shard_windows=SHARD, cutoffs_per_step=3, **DATES_VAL)
    for split in ("train", "val", "test", None):
        one = ShardDataset(monthly, split=split, layout=layout)
        ends = ShardDataset(weekly, split=split, layout=layout)
        assert len(ends) == len(one)
        a, b = one.__getitems__(range(len(one))), ends.__getitems__(range(len(ends)))
        assert all(torch.equal(a[k], b[k]) for k in a)
        assert np.array_equal(one.window_days, ends.window_days)
    every = ShardDataset(weekly, split=None, layout=layout, every_cutoff=True)
    assert len(every) == 3 * len(ShardDataset(monthly, split=None, layout=layout))
    train = ShardDataset(weekly, split="train", layout=layout, every_cutoff=True)
    # training windows: every cutoff on or before train_end, each end step three times
    assert len(train) == 3 * len(ShardDataset(monthly, split="train", layout=layout))
    counts = np.unique(train.window_days, return_counts=True)[1]
    assert (counts == 3).all()
    again = pickle.loads(pickle.dumps(train))
    assert torch.equal(again[len(train) - 1]["values"], train[len(train) - 1]["values"])

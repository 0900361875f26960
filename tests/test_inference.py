"""WorldModel: a trained checkpoint answers for a date with what was known then."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from canvas import compile_layout
from canvas.materialize import CanvasManifest, materialize_canvas
from canvas.shards import build_shard_dataloader
from ingest.synthetic import SyntheticWorldConfig, generate_world
from training import (
    FieldDecoder,
    FieldEncoder,
    MaskedCanvasTrainer,
    TrainConfig,
    WorldModel,
    build_backbone,
)
from training.diffusion import DiffusionWorldModelTrainer
from warehouse.schema import UnknownFieldError
from warehouse.store import Warehouse

NOW = dt.datetime(2025, 6, 1)
VIX = "financial.equities.vix"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("inference")
    wh = Warehouse(root / "wh.duckdb")
    world = generate_world(SyntheticWorldConfig(start="2010-01-01", end="2016-12-31"))
    for name in ("fred", "yahoo"):
        wh.ingest(world.sources[name], source=name, now=NOW)
    fields = sorted(
        {*world.sources["fred"]["field_path"].unique(), *world.sources["yahoo"]["field_path"]}
    )
    bound = compile_layout(*fields, T=6, d_model=32)
    manifest = materialize_canvas(wh, bound, root / "canvas", start="2010-01-01", end="2016-12-31")
    trainer = MaskedCanvasTrainer(
        bound_schema=bound,
        backbone=build_backbone("scratch", bound, n_layers=1),
        encoder=FieldEncoder(bound),
        decoder=FieldDecoder(bound),
        config=TrainConfig(progress=False, checkpoint_every=40),
        checkpoint_dir=root / "run",
    )
    trainer.train(build_shard_dataloader(root / "canvas", bound, "train", 16), 40)
    return wh, root, bound, manifest, trainer


def test_load_rebuilds_the_trained_model(trained):
    wh, root, bound, manifest, trainer = trained
    model = WorldModel.load(root / "run", canvas_dir=root / "canvas")
    batch = build_shard_dataloader(root / "canvas", bound, "test", 4, shuffle=False)
    batch = next(iter(batch))
    expected = trainer.predict(batch)["values"]
    assert torch.allclose(model(batch)[0]["values"], expected, atol=1e-5)


def test_predict_date_uses_what_was_known_then_in_field_units(trained):
    wh, root, bound, manifest, _ = trained
    model = WorldModel.load(root / "run", canvas_dir=root / "canvas")
    frame = model.predict_date(wh, "2015-06-15", fields=["financial.equities"])
    assert set(frame["field_path"]) == {p for p in bound.paths if p.startswith("financial.eq")}
    vix = frame.filter(frame["field_path"] == VIX).row(0, named=True)
    assert vix["unit"] == bound.fields[bound.index[VIX]].unit
    # the observed VIX is the last close released by 2015-06-15, not the month's last one
    known = wh.as_of("2015-06-15", VIX, start="2015-06-01", end="2015-06-30")
    assert vix["observed"] == pytest.approx(known["value"][-1], rel=1e-4)
    assert 5 < vix["prediction"] < 90  # back in index points, not normalised units
    # the S&P 500 is modelled as monthly log changes; both come back as index levels
    sp500 = frame.filter(frame["field_path"] == "financial.equities.sp500").row(0, named=True)
    close = wh.as_of("2015-06-15", "financial.equities.sp500", start="2015-06-01", end="2015-06-30")
    assert sp500["observed"] == pytest.approx(close["value"][-1], rel=1e-6)
    assert 0.7 < sp500["prediction"] / sp500["observed"] < 1.3
    # a monthly field released mid next month is not yet observed in June
    cpi = model.predict_date(wh, "2015-06-15", fields=["*.headline_cpi"]).row(0, named=True)
    assert cpi["observed"] is None and np.isfinite(cpi["prediction"])


def test_regime_latent_and_clear_errors(trained, tmp_path):
    wh, root, bound, manifest, _ = trained
    model = WorldModel.load(root / "run", canvas_dir=root / "canvas")
    batch = model.window_at(wh, "2014-03-31")
    n_regime = int(bound.latent_mask.sum())
    assert model.regime_latent(batch).shape == (1, n_regime * bound.d_model)
    with pytest.raises(UnknownFieldError, match="no field matches pattern 'narratives.nothing'"):
        model.predict_date(wh, "2015-06-15", fields=["narratives.nothing"])
    # a typo among good names is refused too, with the nearest names
    with pytest.raises(UnknownFieldError, match=f"did you mean: .*{VIX}"):
        model.predict_date(wh, "2015-06-15", fields=["financial.equities", VIX + "x"])
    # a date with nothing known in its window: one clear error, not all-null predictions
    for outside in ("2030-01-15", "1990-06-30"):
        with pytest.raises(ValueError, match="observations span 2010-01-.* pick a date"):
            model.predict_date(wh, outside)
    other = compile_layout("financial.fx", T=6, d_model=32)
    materialize_canvas(wh, other, tmp_path / "c2", start="2010-01-01", end="2016-12-31")
    with pytest.raises(ValueError, match="trained on layout"):
        WorldModel.load(root / "run", canvas_dir=tmp_path / "c2")
    assert CanvasManifest.load(root / "canvas").layout_hash == bound.layout_hash()


def test_diffusion_checkpoints_are_refused_by_the_regression_loader(trained, tmp_path):
    wh, root, bound, manifest, _ = trained
    diffusion = DiffusionWorldModelTrainer(
        bound,
        build_backbone("scratch", bound, n_layers=1),
        FieldEncoder(bound),
        FieldDecoder(bound),
        config=TrainConfig(progress=False),
        checkpoint_dir=tmp_path,
    )
    diffusion.save()
    with pytest.raises(ValueError, match="diffusion objective"):
        WorldModel.load(tmp_path, canvas_dir=root / "canvas")


@pytest.fixture(scope="module")
def loaded(trained):
    wh, root, bound, manifest, _ = trained
    return wh, bound, manifest, WorldModel.load(root / "run", canvas_dir=root / "canvas")


@settings(max_examples=12, deadline=None)
@given(hours=st.integers(0, 4 * 365 * 24))
def test_a_window_at_a_moment_holds_exactly_what_was_released_by_then(loaded, hours):
    """The last step of `window_at(moment)` holds a field when, and only when, the
    warehouse had released an observation of that step by the moment (a differenced field
    also needs an earlier step of the window); nothing released later reaches it."""
    wh, bound, manifest, model = loaded
    moment = dt.datetime(2012, 1, 1) + dt.timedelta(hours=hours)
    batch = model.window_at(wh, moment)
    step = dt.datetime(moment.year, moment.month, 1)
    released = wh.sql(
        "SELECT DISTINCT field_path FROM observations "
        "WHERE observed_at >= $a AND observed_at < $t AND known_at <= $t",
        {"a": step, "t": moment},
    )["field_path"].to_list()
    present = {bound.paths[f] for f in np.flatnonzero(batch["presence"][0, -1].numpy())}
    assert present <= set(released), f"released after {moment}: {present - set(released)}"
    levels = {p for p in released if bound.fields[bound.index[p]].transform == "level"}
    assert levels - set(manifest.untrained_fields) <= present


def test_guwm_nowcast_serves_the_promoted_run_with_intervals(trained, capsys):
    """A run promoted under the warehouse's artifacts answers `guwm nowcast` with the
    level nowcast inside its 80% interval, and the latest value released by the date."""
    import json

    from canvas.shards import ShardDataset
    from dagster_defs.cli import main
    from training.evaluate import CELL_TASKS, evaluate
    from training.intervals import ERRORS, validation_errors
    from training.serving import GateResult, promote
    from warehouse.paths import default_artifacts_dir

    wh, root, bound, manifest, _ = trained
    model = WorldModel.load(root / "run", canvas_dir=root / "canvas")
    train = ShardDataset(root / "canvas", split="train", layout=bound)
    val = ShardDataset(root / "canvas", split="val", layout=bound)
    report = evaluate(model.parts, val, dataset_train=train, tasks=CELL_TASKS)
    stds = {p: s["std"] for p, s in manifest.stats.items()}
    (root / "run" / ERRORS).write_text(json.dumps(validation_errors(report.predictions, stds)))
    served_root = default_artifacts_dir(wh.path) / "world_model"  # where guwm looks
    promote(served_root, root / "run", root / "canvas", GateResult(True, {}, []))

    assert (
        main(["--warehouse", str(wh.path), "nowcast", "2015-06-15", VIX, "--format", "json"]) == 0
    )
    (row,) = json.loads(capsys.readouterr().out)
    assert row["lower_80"] <= row["prediction"] <= row["upper_80"]
    known = wh.as_of("2015-06-15", VIX, start="2015-06-01", end="2015-06-30")
    assert row["latest"] == pytest.approx(known["value"][-1])
    assert row["released_at"] <= "2015-06-15"
    # June's CPI is not out on June 15: its interval comes from the unreleased task's errors
    cpi = "country_us.macro.inflation.headline_cpi"
    assert (
        main(["--warehouse", str(wh.path), "nowcast", "2015-06-15", cpi, "--format", "json"]) == 0
    )
    (row,) = json.loads(capsys.readouterr().out)
    assert row["lower_80"] < row["upper_80"] and row["latest_for"] < "2015-06-01"
    assert main(["--warehouse", str(wh.path), "nowcast", "2015-06-15", "financial.nothing"]) == 1


def test_the_main_jobs_load_line_loads_the_run(trained, capsys):
    from dagster_defs.demo import _print_model

    _, root, bound, _, _ = trained
    _print_model(str(root / "run"), root / "canvas", served=False)
    printed = capsys.readouterr().out
    assert f"run     {root / 'run'}  (not served" in printed
    lines = [line.strip().split("  #")[0] for line in printed.splitlines()]
    code = "\n".join(x for x in lines if x.startswith(("from training", "model = ")))
    scope: dict = {}
    exec(code, scope)  # the two lines a user copies: the import and the load
    assert scope["model"].bound.layout_hash() == bound.layout_hash()

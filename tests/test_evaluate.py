"""Evaluation against honest baselines, the baselines themselves, and the regime probe."""

from __future__ import annotations

import datetime as dt
import json
import math
import warnings

import numpy as np
import polars as pl
import pytest
import torch

from canvas import DatasetSpec, HeterogeneousDataset, build_mixed_dataloader, compile_layout
from canvas.materialize import materialize_canvas
from canvas.shards import ShardDataset
from ingest.synthetic import SyntheticWorldConfig, generate_world
from training import FieldDecoder, FieldEncoder
from training.backbones import build_backbone
from training.baselines import (
    AR1,
    DynamicFactor,
    Oracle,
    Ridge,
    ar1,
    dynamic_factor,
    persistence,
    step_index,
    training_mean,
    training_panel,
)
from training.config import TrainConfig
from training.evaluate import BASELINES, PREDICTORS, TASKS, evaluate
from training.masked import MaskedCanvasTrainer
from training.probe import (
    labels_for,
    latent_source,
    plot_regime_timeline,
    raw_inputs,
    regime_latent,
    regime_probe,
    window_factors,
)
from warehouse.store import Warehouse

SEMANTIC_DIM = 384
SPLITS = {"train_end": "2012-12-31", "val_end": "2014-12-31"}


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def windows(series: np.ndarray, T: int) -> np.ndarray:
    """(S, F) series -> (S-T+1, T, F) overlapping windows."""
    view = np.lib.stride_tricks.sliding_window_view(series, T, axis=0)
    return np.ascontiguousarray(view.transpose(0, 2, 1)).astype(np.float32)


def simulate_ar1(a: float, b: float, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = np.empty(n)
    x[0] = a / (1 - b)
    for t in range(1, n):
        x[t] = a + b * x[t - 1] + rng.normal()
    return x


def last_step_hidden(shape: tuple[int, ...]) -> np.ndarray:
    hidden = np.zeros(shape, dtype=bool)
    hidden[:, -1] = True
    return hidden


def mse(prediction: np.ndarray, truth: np.ndarray, scored: np.ndarray) -> float:
    return float(np.mean((prediction - truth)[scored] ** 2))


# -- baselines on hand-made arrays -----------------------------------------------------


def test_persistence_is_the_last_visible_value_before_the_target():
    values = np.array([[[1.0, 5.0], [2.0, 6.0], [3.0, 7.0], [4.0, 8.0]]], dtype=np.float32)
    presence = np.ones_like(values)
    presence[0, 2, 0] = 0  # field 0 absent at step 2
    presence[0, :, 1] = 0  # field 1 never visible
    hidden = last_step_hidden(values.shape)
    prediction = persistence(values, presence, hidden)
    assert prediction[0, -1, 0] == 2.0  # skips the absent step, never reads the hidden 4.0
    assert prediction[0, -1, 1] == 0.0  # nothing visible: the training mean
    hidden[0, 1, 0] = True  # hiding earlier steps too reaches back further
    assert persistence(values, presence, hidden)[0, -1, 0] == 1.0


def test_the_mean_baseline_is_zero():
    values = np.random.default_rng(0).normal(size=(3, 4, 2)).astype(np.float32)
    prediction = training_mean(values, np.ones_like(values), last_step_hidden(values.shape))
    assert prediction.shape == values.shape and not prediction.any()


def test_ar1_recovers_the_process_and_beats_the_mean_out_of_sample():
    a, b, T = 0.3, 0.8, 6
    train = windows(simulate_ar1(a, b, 3000, seed=1)[:, None], T)
    model = AR1.fit(train, np.ones_like(train))
    assert model.b[0] == pytest.approx(b, abs=0.05)
    assert model.a[0] == pytest.approx(a, abs=0.1)
    assert model.fitted.all()

    test = windows(simulate_ar1(a, b, 600, seed=2)[:, None], T)
    presence, hidden = np.ones_like(test), last_step_hidden(test.shape)
    forecast = ar1(test, presence, hidden, train, np.ones_like(train))
    assert mse(forecast, test, hidden) < mse(training_mean(test, presence, hidden), test, hidden)
    assert mse(forecast, test, hidden) < mse(persistence(test, presence, hidden), test, hidden)


def test_ar1_iterates_over_the_horizon_in_closed_form():
    model = AR1(a=np.array([1.0]), b=np.array([0.5]), fitted=np.array([True]))
    values = np.array([[[4.0], [0.0], [0.0]]], dtype=np.float32)
    presence = np.array([[[1.0], [0.0], [1.0]]], dtype=np.float32)
    hidden = last_step_hidden(values.shape)
    # two steps from 4: 1 + 0.5 * (1 + 0.5 * 4) = 2.5
    assert model.predict(values, presence, hidden)[0, -1, 0] == pytest.approx(2.5)


def test_a_field_without_pairs_falls_back_to_persistence():
    values = np.random.default_rng(0).normal(size=(5, 4, 1)).astype(np.float32)
    presence = np.zeros_like(values)
    presence[:, ::2] = 1  # never two consecutive observed steps
    model = AR1.fit(values, presence)
    assert not model.fitted[0] and model.a[0] == 0 and model.b[0] == 1


def test_step_index_counts_months_and_weeks():
    days = np.array(["2015-01-01", "2015-02-01", "2016-01-01"], dtype="datetime64[D]")
    assert step_index(days.astype(np.int64), "1mo").tolist() == [540, 541, 552]
    weeks = np.array([0, 7, 14]) + 3
    assert np.diff(step_index(weeks, "1w")).tolist() == [1, 1]


def test_training_panel_keeps_the_latest_vintage_of_each_step():
    values = np.array([[[1.0], [2.0]], [[2.5], [3.0]]], dtype=np.float32)  # revised step 1
    presence = np.array([[[1.0], [1.0]], [[1.0], [0.0]]], dtype=np.float32)
    panel = training_panel(values, presence, np.array([1, 2]))
    assert panel[:, 0].tolist()[:2] == [1.0, 2.5] and np.isnan(panel[2, 0])


def one_factor_panel(n_steps: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    factor = np.zeros(n_steps)
    for t in range(1, n_steps):
        factor[t] = 0.8 * factor[t - 1] + 0.6 * rng.normal()
    loadings = np.linspace(0.6, 1.2, 8)
    return factor[:, None] * loadings + 0.4 * rng.normal(size=(n_steps, 8))


def test_ridge_matches_the_normal_equations_solved_by_hand():
    """Two fields, T=2, the last step of field 1 hidden: its regressors are field 0 at
    the same step (and that it is visible), and both fields' values at step 0."""
    rng = np.random.default_rng(3)
    values = rng.standard_normal((40, 2, 2))
    values[:, 1, 1] = 0.5 * values[:, 1, 0] - 0.3 * values[:, 0, 1] + 0.2
    presence = np.ones(values.shape)
    presence[::5, 1, 0] = 0  # field 0 sometimes unreleased at the last step
    hidden = np.zeros(values.shape, dtype=bool)
    hidden[:, 1, 1] = True
    penalty = 2.0
    model = Ridge.fit(values, presence, [hidden], penalty=penalty)
    # by hand: regressors [x0 visible at t=1, x1 (hidden: 0), visible0, visible1 (0),
    # x0 at t=0, x1 at t=0, 1]
    visible0 = presence[:, 1, 0]
    zeros = np.zeros(len(values))
    X = np.stack(
        [values[:, 1, 0] * visible0, zeros, visible0, zeros, values[:, 0, 0], values[:, 0, 1]],
        axis=1,
    )
    X = np.concatenate([X, np.ones((len(values), 1))], axis=1)
    penalties = np.diag([penalty] * 6 + [0.0])
    w = np.linalg.solve(X.T @ X + penalties, X.T @ values[:, 1, 1])
    np.testing.assert_allclose(model.coef[1], w, rtol=1e-10, atol=1e-12)
    assert model.fitted.tolist() == [False, True]  # field 0 is never a hidden target
    predicted = model.predict(values, presence, hidden)
    np.testing.assert_allclose(predicted[:, 1, 1], X @ w, rtol=1e-5, atol=1e-6)
    assert (predicted[:, :, 0] == 0).all()


def test_ridge_chooses_its_penalty_on_the_last_training_windows():
    """A target of pure noise is shrunk (the smallest penalty would overfit 19 regressors
    on 160 windows by about k/n = 12%); one that is an exact function of the visible
    cross-section gets the smallest penalty."""
    rng = np.random.default_rng(4)
    values = rng.standard_normal((200, 2, 6))
    hidden = np.zeros(values.shape, dtype=bool)
    hidden[:, 1, 0] = True
    presence = np.ones(values.shape)
    assert Ridge.fit(values, presence, [hidden]).penalty > min(Ridge.PENALTIES)
    values[:, 1, 0] = values[:, 1, 1:].sum(axis=1)
    assert Ridge.fit(values, presence, [hidden]).penalty == min(Ridge.PENALTIES)


def test_the_oracle_is_least_squares_on_the_factors_by_hand():
    """T=2, one factor: a cell's regressors are the factor at its step and at the step
    before (the first step's own for the first), the field's value at the step before
    (0 and a found flag of 0 at the first step), and 1."""
    rng = np.random.default_rng(5)
    g = rng.standard_normal((40, 2, 1))
    values = np.zeros((40, 2, 2))
    values[:, :, 0] = 0.5 + 2 * g[..., 0]  # an exact function of the factor
    values[:, :, 1] = rng.standard_normal((40, 2))
    presence = np.ones(values.shape)
    oracle = Oracle.fit(values, presence, g)
    x0 = values[:, 0, 1]
    X = np.concatenate(
        [
            np.stack([g[:, 0, 0], g[:, 0, 0], np.zeros(40), np.zeros(40), np.ones(40)], 1),
            np.stack([g[:, 1, 0], g[:, 0, 0], x0, np.ones(40), np.ones(40)], 1),
        ]
    )
    y = np.concatenate([values[:, 0, 1], values[:, 1, 1]])
    by_hand = np.linalg.solve(X.T @ X, X.T @ y)
    np.testing.assert_allclose(oracle.coef[1], by_hand, rtol=1e-6, atol=1e-9)
    predicted = oracle.predictor(g)(values, presence, np.zeros(values.shape, dtype=bool))
    np.testing.assert_allclose(predicted[..., 0], values[..., 0], atol=1e-5)


def test_window_factors_average_each_step_of_each_window():
    days = pl.date_range(dt.date(2020, 1, 1), dt.date(2020, 3, 31), "1d", eager=True)
    growth = np.where(days.dt.month() == 1, 1.0, np.where(days.dt.month() == 2, 2.0, 4.0))
    regimes = pl.DataFrame({"date": days, "regime_name": "x", "growth": growth})
    ends = np.array([np.datetime64("2020-02-01"), np.datetime64("2020-03-01")])
    got = window_factors(ends.astype(np.int64), 2, "1mo", regimes)
    np.testing.assert_array_equal(got[..., 0], [[1.0, 2.0], [2.0, 4.0]])
    with pytest.raises(ValueError, match="do not cover"):
        window_factors(np.array([np.datetime64("2020-05-01")]).astype(np.int64), 2, "1mo", regimes)


def test_dfm_nowcasts_a_one_factor_panel_better_than_the_mean():
    series, T = one_factor_panel(200, seed=3), 6
    train, test = windows(series[:120], T), windows(series[120:], T)
    hidden = last_step_hidden(test.shape)
    hidden[:, -1, ::2] = False  # the other half of the fields is seen at the last step
    presence = np.ones_like(test)
    nowcast = dynamic_factor(test, presence, hidden, train, np.ones_like(train), k_factors=1)
    scored = hidden
    assert np.isfinite(nowcast[scored]).all()
    mean_mse = mse(training_mean(test, presence, hidden), test, scored)
    assert mse(nowcast, test, scored) < 0.7 * mean_mse


def test_dfm_smoother_matches_statsmodels_on_one_window():
    from statsmodels.tsa.statespace.dynamic_factor_mq import DynamicFactorMQ

    series, T = one_factor_panel(160, seed=4), 6
    train = windows(series[:100], T)
    model = DynamicFactor.fit(train, np.ones_like(train), k_factors=1, maxiter=20)
    window = series[120:126][None].astype(np.float32)
    hidden = last_step_hidden(window.shape)
    hidden[0, 2, 3] = True
    ours = model.predict(window, np.ones_like(window), hidden)[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = DynamicFactorMQ(
            training_panel(train, np.ones_like(train)), factors=1, standardize=False
        ).fit(maxiter=20, disp=False)
    seen = np.where(hidden[0], np.nan, window[0])
    applied = result.apply(seen, refit=False)
    design = result.filter_results.design[..., 0]
    assert np.allclose(ours, applied.smoothed_state.T @ design.T, atol=1e-4)
    # the predictive spread of the hidden cells: the smoothed state covariance through the
    # design, plus H. Tolerance: float32 output (6e-8 relative); the filter's jitter (1e-9
    # on variances of order 0.1) moves it by less; rtol=1e-5. (A seen cell's variance is
    # 0 up to rounding in both, statsmodels' sometimes negative: not compared.)
    mean, std = model.predictive(window, np.ones_like(window), hidden)
    assert np.array_equal(mean, model.predict(window, np.ones_like(window), hidden))
    cov = applied.smoothed_state_cov  # (m, m, T)
    variance = np.einsum("km,mlt,kl->tk", design, cov, design)
    variance += np.diag(result.filter_results.obs_cov[..., 0])
    assert np.allclose(std[0][hidden[0]], np.sqrt(variance[hidden[0]]), rtol=1e-5)


def test_dfm_is_not_applicable_without_enough_fields():
    values = np.random.default_rng(0).normal(size=(40, 6, 3)).astype(np.float32)
    presence = np.zeros_like(values)
    presence[..., 0] = 1  # one field only
    model = DynamicFactor.fit(values, presence)
    assert model.reason is not None and "field" in model.reason
    prediction = model.predict(values, presence, last_step_hidden(values.shape))
    assert np.isnan(prediction).all()


# -- evaluate on the synthetic world -----------------------------------------------------


@pytest.fixture(scope="module")
def world():
    return generate_world(SyntheticWorldConfig(start="2000-01-01", end="2016-12-31"))


@pytest.fixture(scope="module")
def setup(world):
    sources = []
    for name in ("fred", "yahoo", "pmi"):
        frame = world.sources[name]
        paths = sorted(frame["field_path"].unique())
        sources.append((DatasetSpec.from_fields(name, {p: p for p in paths}), frame))
    bound = compile_layout(*[p for spec, _ in sources for p in spec.field_paths], T=6, d_model=32)
    loader = build_mixed_dataloader(bound, sources, batch_size=16, split="train", **SPLITS)
    test = HeterogeneousDataset(bound, sources, split="test", **SPLITS)
    return bound, loader, test


def make_trainer(bound, cls=MaskedCanvasTrainer):
    torch.manual_seed(0)
    semantic = np.random.default_rng(0).standard_normal((bound.n_fields, SEMANTIC_DIM))
    semantic /= np.linalg.norm(semantic, axis=1, keepdims=True)
    return cls(
        bound_schema=bound,
        backbone=build_backbone("scratch", bound, n_layers=1),
        encoder=FieldEncoder(bound, semantic=semantic.astype(np.float32)),
        decoder=FieldDecoder(bound),
        config=TrainConfig(progress=False, warmup_steps=10, log_every=50),
    )


@pytest.fixture(scope="module")
def trained(setup):
    bound, loader, _ = setup
    trainer = make_trainer(bound)
    trainer.train(loader, 200)
    return trainer


@pytest.fixture(scope="module")
def report(setup, trained):
    _, loader, test = setup
    return evaluate(trained, test, dataset_train=loader.dataset)


def test_the_scratch_model_beats_the_mean_baseline_on_held_out_data(report):
    """In stationary units a hidden field group is inferred from the fields beside it
    better than from the training mean (the nowcast against the mean needs the longer
    training of the world model; see the quality benchmark)."""
    assert report.summary["nowcast"]["n"] > 100
    fields = report.summary["fields"]
    assert fields["n"] > 1000
    assert fields["ratio"]["mean"] < 1.0


def test_the_report_has_every_column_and_no_missing_core_score(report, setup):
    bound = setup[0]
    table = report.table
    for name in PREDICTORS:
        for metric in ("mse", "mae", "mse_orig", "mae_orig"):
            assert f"{name}_{metric}" in table.columns
    assert {"task", "field", "group", "n"} <= set(table.columns)
    assert {f"ratio_{b}" for b in BASELINES} <= set(table.columns)
    assert set(table["task"]) == set(TASKS)
    assert report.summary["unreleased"]["n"] > 0  # e.g. monthly fields released next month
    assert set(report.predictions["task"]) == {"forecast", "unreleased"}
    for name in ("model", "persistence", "mean"):
        assert table[f"{name}_mse"].is_finite().all(), name
    # scored fields are observed, scalar and not latent; the DFM covers some of them
    assert not any(p.startswith("regime.") for p in table["field"])
    assert "financial.crypto.btc" not in set(table["field"])  # no training data: kept absent
    assert report.summary["dfm"]["reason"] is None and report.summary["dfm"]["fields"]
    for task in TASKS:
        assert table.filter(pl.col("task") == task)["dfm_mse"].is_finite().any(), task
        ridge = table.filter(pl.col("task") == task)["ridge_mse"]
        # ridge is fitted on cells inside the windows: n/a for the unreleased task
        assert ridge.is_finite().all() if task != "unreleased" else ridge.is_nan().all(), task
    # field units: MSE scales with the field's variance
    std = dict(zip(bound.paths, setup[2].std, strict=True))
    row = table.row(0, named=True)
    assert row["model_mse_orig"] == pytest.approx(row["model_mse"] * std[row["field"]] ** 2)


def test_the_report_saves_renders_and_plots(report, tmp_path):
    saved = report.save(tmp_path)
    assert all(p.is_file() for p in saved)
    assert pl.read_parquet(tmp_path / "evaluation.parquet").equals(report.table)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["nowcast"]["n"] == report.summary["nowcast"]["n"]
    markdown = report.to_markdown()
    assert "| nowcast |" in markdown and "vs dfm" in markdown
    plots = report.plots(tmp_path / "plots")
    assert len(plots) == 2 and all(p.stat().st_size > 1000 for p in plots)


class OracleTrainer(MaskedCanvasTrainer):
    """Predicts the truth: remembers the values before they are hidden."""

    def _hide(self, batch, hidden):
        self._truth = batch["values"]
        return super()._hide(batch, hidden)

    def predict(self, batch, timestep=None):
        return {"values": self._truth}


class PersistenceTrainer(MaskedCanvasTrainer):
    """Outputs the persistence forecast of what it sees."""

    def predict(self, batch, timestep=None):
        values, presence = batch["values"].numpy(), batch["presence"].numpy()
        hidden = np.zeros(values.shape, dtype=bool)
        return {"values": torch.from_numpy(persistence(values, presence, hidden))}


def test_an_oracle_scores_zero_and_persistence_ties_with_persistence(setup):
    bound, loader, test = setup
    oracle = evaluate(make_trainer(bound, OracleTrainer), test, dataset_train=loader.dataset)
    for task in ("forecast", "nowcast", "fields"):  # the unreleased value is in no window
        assert oracle.summary[task]["model_mse"] == 0.0
        assert all(oracle.summary[task]["ratio"][b] == 0.0 for b in ("persistence", "mean"))
    copy = evaluate(make_trainer(bound, PersistenceTrainer), test, dataset_train=loader.dataset)
    for task in TASKS:
        assert copy.summary[task]["ratio"]["persistence"] == pytest.approx(1.0)
    assert (copy.table["ratio_persistence"] == 1.0).all()


def test_modules_evaluate_like_their_trainer_and_keep_their_mode(setup, trained, report):
    _, loader, test = setup
    trained.encoder.train()
    again = evaluate(
        trained.modules, test, dataset_train=loader.dataset, tasks=("nowcast",)
    ).summary["nowcast"]
    assert trained.encoder.training
    assert again["model_mse"] == pytest.approx(report.summary["nowcast"]["model_mse"], rel=1e-5)
    with pytest.raises(ValueError, match="tasks"):
        evaluate(trained, test, dataset_train=loader.dataset, tasks=("backcast",))


# -- the regime probe ------------------------------------------------------------------


def test_a_separable_latent_is_probed_near_perfectly_and_noise_near_chance():
    rng = np.random.default_rng(0)
    names = np.array(["expansion", "slowdown", "recession"])
    labels = names[rng.integers(0, 3, 600)]
    centres = {n: rng.normal(scale=4.0, size=8) for n in names}
    latent = np.stack([centres[n] for n in labels]) + rng.normal(size=(600, 8))
    result = regime_probe(latent[:400], labels[:400], latent[400:], labels[400:])
    assert result.accuracy > 0.97 and result.balanced_accuracy > 0.97
    noise = rng.normal(size=(600, 8))
    chance = regime_probe(noise[:400], labels[:400], noise[400:], labels[400:])
    assert chance.accuracy < chance.chance + 0.12
    assert chance.chance == pytest.approx(
        np.unique(labels[400:], return_counts=True)[1].max() / 200
    )


def test_the_raw_input_probe_is_reported_beside_the_latent_one():
    rng = np.random.default_rng(1)
    labels = np.array(["a", "b"])[rng.integers(0, 2, 200)]
    raw = (labels == "a")[:, None] + rng.normal(scale=0.1, size=(200, 3))
    result = regime_probe(
        rng.normal(size=(150, 4)),
        labels[:150],
        rng.normal(size=(50, 4)),
        labels[150:],
        raw_train=raw[:150],
        raw_test=raw[150:],
    )
    assert result.raw_accuracy > 0.95 > result.accuracy
    with pytest.raises(ValueError, match="single regime"):
        regime_probe(raw, np.array(["a"] * 200), raw, labels)


def test_labels_for_maps_each_window_end_to_the_regime_of_that_day():
    regimes = pl.DataFrame(
        {
            "date": pl.date_range(pl.date(2020, 1, 1), pl.date(2020, 3, 31), eager=True),
        }
    ).with_columns(
        regime_name=pl.when(pl.col("date") < pl.date(2020, 2, 15))
        .then(pl.lit("expansion"))
        .otherwise(pl.lit("recession"))
    )
    ends = np.array(["2020-01-01", "2020-02-14", "2020-02-15", "2020-03-01"], "datetime64[us]")
    expected = ["expansion", "expansion", "recession", "recession"]
    assert labels_for(ends, regimes).tolist() == expected
    days = ends.astype("datetime64[D]").astype(np.int64)
    assert labels_for(days, regimes).tolist() == expected
    with pytest.raises(ValueError, match="no regime known"):
        labels_for(np.array(["2019-12-01"], "datetime64[D]"), regimes)


def test_the_regime_latent_of_the_trained_model_is_probed(setup, trained, world, tmp_path):
    bound, loader, test = setup
    assert latent_source(bound).startswith("regime fields")
    train_latent = regime_latent(trained, loader.dataset)
    test_latent = regime_latent(trained, test)
    n_regime = int(bound.latent_mask.sum())
    assert train_latent.shape == (len(loader.dataset), n_regime * bound.d_model)
    assert np.isfinite(test_latent).all()
    labels_train = labels_for(loader.dataset.window_end, world.regimes)
    labels_test = labels_for(test.window_end, world.regimes)
    result = regime_probe(
        train_latent,
        labels_train,
        test_latent,
        labels_test,
        raw_train=raw_inputs(loader.dataset),
        raw_test=raw_inputs(test),
    )
    assert result.n_test == len(test) and 0 <= result.accuracy <= 1
    assert not math.isnan(result.raw_accuracy)
    path = plot_regime_timeline(test.window_end, labels_test, result.predicted, tmp_path / "r.png")
    assert path.stat().st_size > 1000


def test_materialized_shards_evaluate_like_the_in_memory_dataset(setup, trained, world, tmp_path):
    bound, _, _ = setup
    warehouse = Warehouse(tmp_path / "wh.duckdb")
    for name in ("fred", "yahoo", "pmi"):
        warehouse.ingest(world.sources[name], source=name)
    materialize_canvas(
        warehouse, bound, tmp_path / "canvas", start="2000-01-01", end="2016-12-31", **SPLITS
    )
    train = ShardDataset(tmp_path / "canvas", split="train", layout=bound)
    test = ShardDataset(tmp_path / "canvas", split="test", layout=bound)
    report = evaluate(trained, test, dataset_train=train, tasks=("nowcast",))
    nowcast = report.summary["nowcast"]
    assert nowcast["n"] > 100 and math.isfinite(nowcast["model_mse"])
    assert report.table["persistence_mse"].is_finite().all()


def test_the_unreleased_task_scores_what_the_next_window_holds():
    """Field 0 is released within its step, field 1 a step later: a window's last step
    lacks field 1, and the next window (one step on) holds it at its second-last step."""
    from training.evaluate import _Arrays, _released_next

    values = np.arange(4 * 2 * 2, dtype=np.float32).reshape(4, 2, 2)
    presence = np.ones((4, 2, 2), dtype=bool)
    presence[:, -1, 1] = False  # field 1 not yet out at any cutoff
    months = np.array(["2020-01", "2020-02", "2020-03", "2020-05"], dtype="datetime64[M]")
    days = months.astype("datetime64[D]").astype(np.int64)
    truth, (mask,) = _released_next(_Arrays(values, presence, days), "1mo")
    # windows 0 and 1 are followed one month later; 2 is followed after a gap, 3 by nothing
    assert mask[:, -1, 1].tolist() == [True, True, False, False]
    assert not mask[:, :-1].any() and not mask[..., 0].any()
    assert truth[0, -1, 1] == values[1, 0, 1] and truth[1, -1, 1] == values[2, 0, 1]
    untouched = ~mask
    assert np.array_equal(truth[untouched], values[untouched])


def test_a_field_seen_at_few_training_steps_is_counted_once_per_step():
    """Overlapping windows show one step several times; the count is of distinct steps."""
    from training.evaluate import _Arrays, _observed_steps

    presence = np.zeros((3, 3, 2), dtype=bool)  # windows ending Mar, Apr, May 2020
    presence[0, 2, 0] = presence[1, 1, 0] = presence[2, 0, 0] = True  # March, three times
    presence[:, :, 1] = True  # every step: January .. May
    months = np.array(["2020-03", "2020-04", "2020-05"], dtype="datetime64[M]")
    days = months.astype("datetime64[D]").astype(np.int64)
    arrays = _Arrays(np.zeros(presence.shape, np.float32), presence, days)
    assert _observed_steps(arrays, "1mo").tolist() == [1, 5]

"""Evaluation of a trained canvas model against honest baselines on a held-out period.

    report = evaluate(trainer, dataset_test, dataset_train=dataset_train)
    print(report.to_markdown()); report.save("run/evaluation"); report.plots("run/evaluation")

Three tasks, all on every window of the test dataset (a HeterogeneousDataset or a
ShardDataset split), in the fields' stationary (transformed, normalised) units:

* ``"forecast"``: one step ahead, the last time step of every field is hidden (the model
  sees T-1 steps); scored are the fields present at the last step.
* ``"nowcast"``: the ragged edge, each field's last step is hidden in turn while
  whatever the other fields released by the cutoff stays visible.
* ``"unreleased"``: the last step's cells a window does not hold because they were not
  yet released by its cutoff (this month's CPI at the start of next month), predicted
  from what the window holds and scored against the value the next window (one step
  later) holds: what ``predict_date`` answers for a field not yet out. Ridge is n/a
  here (its targets lie outside the windows).
* ``"fields"``: each field group (the path's parent, e.g. ``financial.fx``) in turn is
  hidden over the whole window; scored are its present cells.

The model runs in eval mode under ``torch.no_grad`` on batches from ``__getitems__``,
with the hidden positions removed from its input by ``trainer._hide``, exactly as in
training. The baselines of :mod:`training.baselines` see the same visible cells:
persistence, the training mean, a per-field AR(1), ridge regression on the panel
(fitted on the training windows hidden as the task hides them) and a dynamic factor
model (AR(1), ridge and DFM are fitted on `dataset_train`). Scored are scalar, non-latent
fields observed in the training windows; the summary's ``unscored`` says why any other
field present in the test windows is left out (vector fields such as news embeddings
have no scalar baseline; a field seen at fewer than `MIN_TRAIN_STEPS` training steps has
no reliable normalisation).

Per task and field the report has n (scored cells), MSE and MAE in normalised units and
in the fields' modelled units (x std: a change for a differenced field) for the model and
every baseline, and ``ratio_<baseline>`` = model MSE / baseline MSE (< 1: the model is
better). The summary's ratio per task pools the fields a baseline covers, sum(n x model
MSE) / sum(n x baseline MSE): the average of the per-field ratios weighted by n x baseline MSE. Its
``median_field_ratio`` is the median of the per-field ratios, which no single badly
predicted field dominates.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import torch
from torch import nn

from canvas.dataset import HeterogeneousDataset
from canvas.layout import CanvasLayout
from canvas.shards import ShardDataset
from training.baselines import (
    AR1,
    DynamicFactor,
    Oracle,
    Ridge,
    persistence,
    step_index,
    training_mean,
)
from training.masked import MaskedCanvasTrainer
from training.masking import field_groups

TASKS = ("forecast", "nowcast", "unreleased", "fields")
CELL_TASKS = ("forecast", "unreleased")  # last-step cells: `predictions`, intervals
# A field seen at fewer training steps is not scored: a normalisation (and an AR(1) or
# ridge fit) from a handful of points puts later values hundreds of deviations out.
MIN_TRAIN_STEPS = 24
PREDICTORS = ("model", "persistence", "mean", "ar1", "ridge", "dfm", "oracle")
BASELINES = PREDICTORS[1:]
N_KEY_FIELDS = 4
CanvasDataset = HeterogeneousDataset | ShardDataset
Predict = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


@dataclass(frozen=True)
class _Arrays:
    values: np.ndarray  # (N, T, F) normalised
    presence: np.ndarray  # (N, T, F) bool
    window_end: np.ndarray  # (N,) days since 1970-01-01


@dataclass(frozen=True)
class EvaluationReport:
    """Per-field scores (`table`), per-task summary and the last-step cells of the
    forecast and unreleased tasks (`predictions`, with a `task` column)."""

    table: pl.DataFrame
    summary: dict[str, Any]
    predictions: pl.DataFrame

    def to_markdown(self) -> str:
        """The summary per task and the per-field table as Markdown."""
        lines = [
            f"### Evaluation: {self.summary['windows']} test windows, "
            f"layout {self.summary['layout_hash']}",
            "",
            "| task | n | fields | model MSE | "
            + " | ".join(f"vs {b}" for b in BASELINES)
            + " | "
            + " | ".join(f"median vs {b}" for b in BASELINES)
            + " |",
            "|" + "---|" * (4 + 2 * len(BASELINES)),
        ]
        for task in self.summary["tasks"]:
            s = self.summary[task]
            lines.append(
                f"| {task} | {s['n']} | {s['fields']} | {_fmt(s['model_mse'])} | "
                + " | ".join(_fmt(s["ratio"][b]) for b in BASELINES)
                + " | "
                + " | ".join(_fmt(s["median_field_ratio"][b]) for b in BASELINES)
                + " |"
            )
        dfm = self.summary["dfm"]
        lines += [
            "",
            "Ratios: model MSE / baseline MSE in normalised units, pooled over the fields the "
            "baseline covers (< 1: the model is better).",
            f"DFM: {len(dfm['fields'])} fields, {dfm['k_factors']} factor(s)"
            if dfm["reason"] is None
            else f"DFM: n/a ({dfm['reason']})",
            *(f"Not scored: {field} ({why})" for field, why in self.summary["unscored"].items()),
            "",
            "| task | field | n | "
            + " | ".join(f"{p} MSE" for p in PREDICTORS)
            + " | "
            + " | ".join(f"ratio {b}" for b in BASELINES)
            + " |",
            "|" + "---|" * (3 + len(PREDICTORS) + len(BASELINES)),
        ]
        for row in self.table.iter_rows(named=True):
            lines.append(
                f"| {row['task']} | {row['field']} | {row['n']} | "
                + " | ".join(_fmt(row[f"{p}_mse"]) for p in PREDICTORS)
                + " | "
                + " | ".join(_fmt(row[f"ratio_{b}"]) for b in BASELINES)
                + " |"
            )
        return "\n".join(lines) + "\n"

    def save(self, directory: str | Path) -> list[Path]:
        """Table (Parquet + CSV), summary JSON, forecast predictions and the Markdown."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        paths = [directory / n for n in ("evaluation.parquet", "evaluation.csv")]
        self.table.write_parquet(paths[0])
        self.table.write_csv(paths[1])
        paths.append(directory / "summary.json")
        paths[-1].write_text(json.dumps(_jsonable(self.summary), indent=2) + "\n")
        paths.append(directory / "predictions.parquet")
        self.predictions.write_parquet(paths[-1])
        paths.append(directory / "evaluation.md")
        paths[-1].write_text(self.to_markdown())
        return paths

    def plots(self, directory: str | Path) -> list[Path]:
        """Nowcasts vs actuals of the fields with the most data; ratios per field group."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        paths = []
        if self.predictions.height:
            paths.append(self._plot_nowcasts(directory / "nowcast_key_fields.png"))
        if self.table.height:
            paths.append(self._plot_ratios(directory / "ratios_by_group.png"))
        return paths

    def _plot_nowcasts(self, path: Path) -> Path:
        from matplotlib.figure import Figure

        counts = self.predictions.group_by("field").len().sort(["len", "field"], descending=True)
        fields = counts["field"].head(N_KEY_FIELDS).to_list()
        fig = Figure(figsize=(9, 2.4 * len(fields)), layout="constrained")
        for ax, field in zip(
            fig.subplots(len(fields), 1, squeeze=False)[:, 0], fields, strict=True
        ):
            rows = self.predictions.filter(pl.col("field") == field).sort("date")
            dates = rows["date"].to_numpy()
            ax.plot(dates, rows["actual"], color="black", lw=1.8, label="actual")
            for name, style in (("model", "-"), ("persistence", ":"), ("dfm", "--")):
                if rows[name].is_not_nan().any():
                    ax.plot(dates, rows[name], style, lw=1.2, label=name)
            ax.set_title(f"{field}: the last step, predicted at the cutoff", fontsize=9)
            ax.tick_params(labelsize=8)
        fig.axes[0].legend(fontsize=8, ncol=4, loc="best")
        fig.savefig(path, dpi=110)
        return path

    def _plot_ratios(self, path: Path) -> Path:
        from matplotlib.figure import Figure

        tasks = self.table["task"].unique(maintain_order=True).to_list()
        fig = Figure(figsize=(10, 3.4 * len(tasks)), layout="constrained")
        for ax, task in zip(fig.subplots(len(tasks), 1, squeeze=False)[:, 0], tasks, strict=True):
            groups = _group_ratios(self.table.filter(pl.col("task") == task))
            x = np.arange(groups.height)
            width = 0.8 / len(BASELINES)
            for i, b in enumerate(BASELINES):
                ratio = groups[f"ratio_{b}"].to_numpy()
                ax.bar(x + (i - (len(BASELINES) - 1) / 2) * width, ratio, width, label=f"vs {b}")
            ax.axhline(1.0, color="black", lw=0.8)
            ax.set_yscale("log")
            ax.set_xticks(x, groups["group"].to_list(), rotation=35, ha="right", fontsize=7)
            ax.set_ylabel("model / baseline MSE", fontsize=8)
            ax.set_title(f"task {task}: < 1 means the model is better", fontsize=9)
            ax.legend(fontsize=7, ncol=len(BASELINES))
        fig.savefig(path, dpi=110)
        return path


def evaluate(
    trainer_or_modules: MaskedCanvasTrainer | Mapping[str, nn.Module],
    dataset_test: CanvasDataset,
    *,
    dataset_train: CanvasDataset,
    tasks: Sequence[str] = TASKS,
    batch_size: int = 64,
    dfm_options: Mapping[str, Any] | None = None,
    factors: tuple[np.ndarray, np.ndarray] | None = None,
) -> EvaluationReport:
    """Score the model and the baselines on `dataset_test` (see the module doc).

    `trainer_or_modules` is a trainer (anything with ``predict``, ``_hide``, ``modules``
    and ``device``, such as MaskedCanvasTrainer) or its modules ``{"encoder",
    "backbone", "decoder"}``. `dataset_train` (same layout and normalisation) fits the
    AR(1) and the dynamic factor model; `dfm_options` go to ``DynamicFactor.fit``.
    `factors` (the hidden factors per training and test window, (N, T, K) each; the
    synthetic world's truth) adds the oracle; without them it is n/a.
    """
    unknown = sorted(set(tasks) - set(TASKS))
    if unknown or not tasks:
        raise ValueError(f"tasks must be a non-empty subset of {TASKS}, got {tasks}")
    layout: CanvasLayout = dataset_test.layout
    _check_compatible(dataset_test, dataset_train)
    trainer = _as_trainer(trainer_or_modules, layout)
    test = _arrays(dataset_test, batch_size)
    train = _arrays(dataset_train, batch_size)
    scorable, unscored = _scorable(layout, train, test.presence)
    dfm = DynamicFactor.fit(
        train.values,
        train.presence,
        step_index(train.window_end, layout.step),
        eligible=scorable,
        **(dfm_options or {}),
    )
    baselines: dict[str, Predict] = {
        "persistence": persistence,
        "mean": training_mean,
        "ar1": AR1.fit(train.values, train.presence).predict,
        "dfm": dfm.predict,
        "oracle": Oracle.fit(train.values, train.presence, factors[0]).predictor(factors[1])
        if factors is not None
        else _not_available,
    }
    mean, std = np.asarray(dataset_test.mean), np.asarray(dataset_test.std)
    tables, cells = [], []
    for task in tasks:
        scored = np.zeros(test.values.shape, dtype=bool)
        predicted = {p: np.full(test.values.shape, np.nan, dtype=np.float32) for p in PREDICTORS}
        if task == "unreleased":  # the targets lie outside the windows: no ridge to fit
            truth, masks = _released_next(test, layout.step)
            fitted = {**baselines, "ridge": _not_available}
        else:
            truth = test.values
            masks = list(_hidden_masks(task, layout, test.values.shape, scorable))
            train_masks = list(_hidden_masks(task, layout, train.values.shape, scorable))
            fitted = {
                **baselines,
                "ridge": Ridge.fit(train.values, train.presence, train_masks).predict,
            }
        for hidden in masks:
            target = hidden & (test.presence | (task == "unreleased")) & scorable
            if not target.any():
                continue
            outputs = {"model": _model_predict(trainer, dataset_test, hidden, batch_size)}
            outputs |= {n: f(test.values, test.presence, hidden) for n, f in fitted.items()}
            for name, output in outputs.items():
                predicted[name] = np.where(target, output, predicted[name])
            scored |= target
        tables.append(_score(task, layout, truth, scored, predicted, std))
        if task in CELL_TASKS:  # one mask each: the last step
            dfm_std = dfm.predictive(test.values, test.presence, masks[0])[1]
            frame = _cells_frame(layout, test, truth, scored, predicted, dfm_std, mean, std)
            cells.append(frame.with_columns(pl.lit(task).alias("task")))
    predictions = pl.concat(cells) if cells else pl.DataFrame()
    table = pl.concat(tables)
    summary = {
        "windows": len(test.values),
        "layout_hash": layout.layout_hash(),
        "tasks": list(tasks),
        **{task: _summarise(table.filter(pl.col("task") == task)) for task in tasks},
        "dfm": dfm.describe(layout.paths),
        "unscored": unscored,
    }
    return EvaluationReport(table=table, summary=summary, predictions=predictions)


# -- inputs ----------------------------------------------------------------------------


def _not_available(values: np.ndarray, presence: np.ndarray, hidden: np.ndarray) -> np.ndarray:
    return np.full(values.shape, np.nan, dtype=np.float32)


def _check_compatible(test: CanvasDataset, train: CanvasDataset) -> None:
    if test.layout.layout_hash() != train.layout.layout_hash():
        raise ValueError(
            f"train and test datasets have different layouts "
            f"({train.layout.layout_hash()} vs {test.layout.layout_hash()})"
        )
    if not (np.allclose(test.mean, train.mean) and np.allclose(test.std, train.std)):
        raise ValueError(
            "train and test datasets are normalised differently; build both with the same "
            "train_end (or from the same materialized canvas)"
        )


def _as_trainer(model: Any, layout: CanvasLayout) -> Any:
    """The trainer itself, or a MaskedCanvasTrainer around a mapping of its modules."""
    if isinstance(model, Mapping):
        missing = {"encoder", "backbone", "decoder"} - set(model)
        if missing:
            raise ValueError(f"modules lack {sorted(missing)}")
        return MaskedCanvasTrainer(
            layout, backbone=model["backbone"], encoder=model["encoder"], decoder=model["decoder"]
        )
    return model


def _observed_steps(arrays: _Arrays, step: str) -> np.ndarray:
    """(F,) the number of distinct steps at which each field is present in some window."""
    N, T, F = arrays.presence.shape
    steps = (step_index(arrays.window_end, step) - (T - 1))[:, None] + np.arange(T)
    n, t, f = np.nonzero(arrays.presence)
    cells = np.unique(np.stack([steps[n, t], f]), axis=1)
    return np.bincount(cells[1], minlength=F)


def _scorable(
    layout: CanvasLayout, train: _Arrays, test_presence: np.ndarray
) -> tuple[np.ndarray, dict[str, str]]:
    """(F,) fields to score, and why each field present in the test windows is not."""
    vector = np.zeros(layout.n_fields, dtype=bool)
    vector[layout.vector_fields] = True
    steps = _observed_steps(train, layout.step)
    scorable = ~layout.latent_mask & ~vector & (steps >= MIN_TRAIN_STEPS)
    unscored = {
        layout.paths[f]: "vector field (no scalar baseline)"
        if vector[f]
        else f"observed at {steps[f]} training steps, fewer than {MIN_TRAIN_STEPS} (its "
        "normalisation and every fitted baseline would rest on too little)"
        for f in np.flatnonzero(test_presence.any(axis=(0, 1)) & ~scorable)
    }
    return scorable, unscored


def _batches(n: int, batch_size: int) -> Iterator[np.ndarray]:
    for start in range(0, n, batch_size):
        yield np.arange(start, min(n, start + batch_size))


def _arrays(dataset: CanvasDataset, batch_size: int) -> _Arrays:
    """Values, presence and window ends of every window of a dataset."""
    parts = [dataset.__getitems__(idx.tolist()) for idx in _batches(len(dataset), batch_size)]
    return _Arrays(
        values=torch.cat([p["values"] for p in parts]).numpy(),
        presence=torch.cat([p["presence"] for p in parts]).numpy() > 0,
        window_end=torch.cat([p["window_end"] for p in parts]).numpy(),
    )


def _released_next(test: _Arrays, step: str) -> tuple[np.ndarray, list[np.ndarray]]:
    """(truth, [mask]) of the unreleased task: the last-step cells a window does not hold
    (not yet released by its cutoff) that the next window, one step later, holds; truth
    is the windows' values with those cells taken from the next window."""
    N, T, _ = test.values.shape
    mask = np.zeros(test.values.shape, dtype=bool)
    truth = test.values.copy()
    if N > 1 and T > 1:
        steps = step_index(test.window_end, step)
        follows = (steps[1:] == steps[:-1] + 1)[:, None]
        released = follows & ~test.presence[:-1, -1] & test.presence[1:, -2]
        mask[:-1, -1] = released
        truth[:-1, -1] = np.where(released, test.values[1:, -2], truth[:-1, -1])
    return truth, [mask]


def _hidden_masks(
    task: str, layout: CanvasLayout, shape: tuple[int, int, int], scorable: np.ndarray
) -> Iterator[np.ndarray]:
    """(N, T, F) bool masks of what a task hides, one per model run."""
    if task == "forecast":
        last = np.zeros(shape[1:], dtype=bool)
        last[-1] = True
        yield np.broadcast_to(last, shape)
        return
    if task == "nowcast":
        for f in np.flatnonzero(scorable):
            one = np.zeros(shape[1:], dtype=bool)
            one[-1, f] = True
            yield np.broadcast_to(one, shape)
        return
    groups = field_groups(layout).numpy()
    for g in np.unique(groups):
        yield np.broadcast_to(groups == g, shape)


@torch.no_grad()
def _model_predict(
    trainer: Any, dataset: CanvasDataset, hidden: np.ndarray, batch_size: int
) -> np.ndarray:
    """(N, T, F) model predictions with `hidden` removed from the input, in eval mode."""
    modules = list(trainer.modules.values())
    modes = [m.training for m in modules]
    for m in modules:
        m.eval()
    try:
        out = []
        for idx in _batches(len(dataset), batch_size):
            batch = {k: v.to(trainer.device) for k, v in dataset.__getitems__(idx.tolist()).items()}
            mask = torch.from_numpy(np.ascontiguousarray(hidden[idx])).to(trainer.device)
            prediction = trainer.predict(trainer._hide(batch, mask))["values"]
            out.append(prediction.float().cpu().numpy())
    finally:
        for m, mode in zip(modules, modes, strict=True):
            m.train(mode)
    return np.concatenate(out)


# -- scores ----------------------------------------------------------------------------


def _score(
    task: str,
    layout: CanvasLayout,
    values: np.ndarray,
    scored: np.ndarray,
    predicted: Mapping[str, np.ndarray],
    std: np.ndarray,
) -> pl.DataFrame:
    """One row per scored field: n, MSE/MAE (normalised and modelled units), ratios."""
    n = scored.sum(axis=(0, 1))
    fields = np.flatnonzero(n > 0)
    columns: dict[str, Any] = {
        "task": [task] * len(fields),
        "field": [layout.paths[f] for f in fields],
        "group": [layout.paths[f].rsplit(".", 1)[0] for f in fields],
        "n": n[fields].astype(np.int64),
    }
    count = n[fields].astype(np.float64)
    for name in PREDICTORS:
        error = np.where(scored, predicted[name].astype(np.float64) - values, 0.0)
        mse = (error**2).sum(axis=(0, 1))[fields] / count
        mae = np.abs(error).sum(axis=(0, 1))[fields] / count
        columns[f"{name}_mse"] = mse
        columns[f"{name}_mae"] = mae
        columns[f"{name}_mse_orig"] = mse * std[fields].astype(np.float64) ** 2
        columns[f"{name}_mae_orig"] = mae * std[fields]
    with np.errstate(divide="ignore", invalid="ignore"):
        for b in BASELINES:
            columns[f"ratio_{b}"] = columns["model_mse"] / columns[f"{b}_mse"]
    return pl.DataFrame(columns, nan_to_null=False)


def _summarise(table: pl.DataFrame) -> dict[str, Any]:
    """Per task: n, fields, pooled model MSE, pooled and median ratios vs each baseline."""
    n = table["n"].to_numpy().astype(np.float64)
    model = table["model_mse"].to_numpy()
    summary: dict[str, Any] = {
        "n": int(n.sum()),
        "fields": table.height,
        "model_mse": float((n * model).sum() / n.sum()) if n.sum() else math.nan,
        "ratio": {},
        "median_field_ratio": {},
        "n_compared": {},
    }
    for b in BASELINES:
        base = table[f"{b}_mse"].to_numpy()
        covered = np.isfinite(base)
        with np.errstate(divide="ignore", invalid="ignore"):
            pooled = (n * model)[covered].sum() / (n * base)[covered].sum()
        ratios = table[f"ratio_{b}"].to_numpy()[covered]
        summary["ratio"][b] = float(pooled) if covered.any() else math.nan
        summary["median_field_ratio"][b] = float(np.median(ratios)) if covered.any() else math.nan
        summary["n_compared"][b] = int(n[covered].sum())
    return summary


def _group_ratios(table: pl.DataFrame) -> pl.DataFrame:
    """Pooled ratio per field group and baseline (over the fields the baseline covers)."""
    return (
        table.group_by("group", maintain_order=True)
        .agg(
            (
                (pl.col("n") * pl.col("model_mse")).filter(pl.col(f"{b}_mse").is_not_nan()).sum()
                / (pl.col("n") * pl.col(f"{b}_mse")).filter(pl.col(f"{b}_mse").is_not_nan()).sum()
            ).alias(f"ratio_{b}")
            for b in BASELINES
        )
        .sort("group")
    )


def _cells_frame(
    layout: CanvasLayout,
    test: _Arrays,
    truth: np.ndarray,
    scored: np.ndarray,
    predicted: Mapping[str, np.ndarray],
    dfm_std: np.ndarray,
    mean: np.ndarray,
    std: np.ndarray,
) -> pl.DataFrame:
    """The scored last-step cells in modelled units: field, date, actual, each predictor,
    and the standard deviation of the DFM's Gaussian predictive distribution."""
    n, f = np.nonzero(scored[:, -1])
    return pl.DataFrame(
        {
            "field": np.asarray(layout.paths)[f],
            "date": test.window_end[n].astype("datetime64[D]"),
            "actual": truth[n, -1, f] * std[f] + mean[f],
            **{p: predicted[p][n, -1, f] * std[f] + mean[f] for p in PREDICTORS},
            "dfm_std": dfm_std[n, -1, f] * std[f],
        },
        nan_to_null=False,
    )


def _fmt(x: float) -> str:
    return "n/a" if x is None or math.isnan(x) else f"{x:.3g}"


def _jsonable(obj: Any) -> Any:
    """Non-finite floats become None (JSON has no NaN)."""
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj

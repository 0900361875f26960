"""Regime probe: does the model's shared latent know the synthetic world's hidden regime?

    latent_train = regime_latent(trainer, dataset_train)
    latent_test = regime_latent(trainer, dataset_test)
    result = regime_probe(
        latent_train, labels_for(dataset_train.window_end, world.regimes),
        latent_test, labels_for(dataset_test.window_end, world.regimes),
        raw_train=raw_inputs(dataset_train), raw_test=raw_inputs(dataset_test),
    )

The latent of a window is the backbone's output at the regime.* (latent) fields'
positions at the window's last step, concatenated; a layout without regime fields
falls back to the mean of all real (occupied) positions of the last step
(:func:`latent_source` says which). The whole window is visible: nothing is hidden.

The probe is a standardised multinomial logistic regression fitted on the training
windows and scored on the test windows, next to the chance level (the majority class's
share of the test labels) and the same probe on the raw visible inputs of the last step
(values x presence), which tells what the backbone adds over its input.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import torch

from canvas.dataset import HeterogeneousDataset
from canvas.layout import CanvasLayout
from canvas.shards import ShardDataset
from training.baselines import step_index

log = logging.getLogger("guwm.training")
CanvasDataset = HeterogeneousDataset | ShardDataset


@dataclass(frozen=True)
class ProbeResult:
    """Test scores of the probe on the latent and, when given, on the raw inputs."""

    accuracy: float
    balanced_accuracy: float
    chance: float
    n_train: int
    n_test: int
    classes: list[str]
    predicted: np.ndarray
    raw_accuracy: float | None = None
    raw_balanced_accuracy: float | None = None

    def as_dict(self) -> dict[str, Any]:
        """The scores as plain values (no predictions)."""
        return {
            "accuracy": self.accuracy,
            "balanced_accuracy": self.balanced_accuracy,
            "chance": self.chance,
            "raw_accuracy": self.raw_accuracy,
            "raw_balanced_accuracy": self.raw_balanced_accuracy,
            "n_train": self.n_train,
            "n_test": self.n_test,
            "classes": self.classes,
        }


def latent_source(layout: CanvasLayout) -> str:
    """Which tokens `regime_latent` reads for this layout, in words."""
    regime = [p for p, latent in zip(layout.paths, layout.latent_mask, strict=True) if latent]
    if regime:
        return f"regime fields at the last step: {', '.join(regime)}"
    return "no regime field: mean of all real positions of the last step"


@torch.no_grad()
def regime_latent(trainer: Any, dataset: CanvasDataset, *, batch_size: int = 64) -> np.ndarray:
    """(N, d) backbone output at the regime fields of each window's last step (see above).

    `trainer` is anything with ``encoder`` and ``backbone`` modules (a trainer).
    """
    layout: CanvasLayout = dataset.layout
    positions = torch.as_tensor(layout.latent_positions, dtype=torch.long)
    log.info("regime latent from %s", latent_source(layout))
    modules = [trainer.encoder, trainer.backbone]
    modes = [m.training for m in modules]
    for m in modules:
        m.eval()
    device = next(trainer.encoder.parameters()).device
    try:
        out = []
        for start in range(0, len(dataset), batch_size):
            batch = dataset.__getitems__(list(range(start, min(len(dataset), start + batch_size))))
            tokens = trainer.backbone(trainer.encoder({k: v.to(device) for k, v in batch.items()}))
            last = tokens[:, -1]  # (B, H*W, d)
            if len(positions):
                out.append(last[:, positions.to(device)].flatten(1).float().cpu().numpy())
            else:
                out.append(last[:, : layout.n_slots].mean(dim=1).float().cpu().numpy())
    finally:
        for m, mode in zip(modules, modes, strict=True):
            m.train(mode)
    return np.concatenate(out)


def raw_inputs(dataset: CanvasDataset) -> np.ndarray:
    """(N, F) the raw visible inputs of each window's last step: values x presence."""
    batch = dataset.__getitems__(list(range(len(dataset))))
    return (batch["values"][:, -1] * batch["presence"][:, -1]).numpy()


def labels_for(window_end: np.ndarray, regimes: pl.DataFrame) -> np.ndarray:
    """The true regime name at each window end date (datetime64, or days since 1970).

    `regimes` is ``world.regimes`` (daily ``date``, ``regime_name``); each date takes the
    regime of the latest day at or before it.
    """
    ends = np.asarray(window_end)
    days = (
        ends.astype("datetime64[D]").astype(np.int64)
        if np.issubdtype(ends.dtype, np.datetime64)
        else ends.astype(np.int64)
    )
    table = regimes.sort("date")
    known = table["date"].to_numpy().astype("datetime64[D]").astype(np.int64)
    row = np.searchsorted(known, days, side="right") - 1
    if (row < 0).any():
        first = np.datetime64(int(days[row < 0].min()), "D")
        raise ValueError(f"no regime known at {first}; the regimes start at {table['date'][0]}")
    return table["regime_name"].to_numpy()[row]


def window_factors(window_end: np.ndarray, T: int, step: str, regimes: pl.DataFrame) -> np.ndarray:
    """(N, T, K) the hidden factors of ``world.regimes`` averaged over each step of each
    window (window ends in days since 1970, `step` the layout's): the oracle's inputs."""
    columns = [c for c, t in regimes.schema.items() if t.is_float()]
    daily = regimes.sort("date")
    steps = step_index(daily["date"].to_numpy().astype("datetime64[D]").astype(np.int64), step)
    means = (
        daily.select(columns)
        .with_columns(step=pl.Series(steps))
        .group_by("step", maintain_order=True)
        .mean()
    )
    known = means["step"].to_numpy()
    wanted = step_index(np.asarray(window_end), step)[:, None] - (T - 1) + np.arange(T)
    row = np.searchsorted(known, wanted)
    if (row >= len(known)).any() or (known[np.minimum(row, len(known) - 1)] != wanted).any():
        raise ValueError("the regimes do not cover every step of the windows")
    return means.select(columns).to_numpy()[row]


def _fit_score(
    x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray, seed: int
) -> tuple[np.ndarray, float, float]:
    """Standardised multinomial logistic regression: test predictions and accuracies."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, balanced_accuracy_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, random_state=seed))
    probe.fit(x_train, y_train)
    predicted = probe.predict(x_test)
    with warnings.catch_warnings():  # a regime the test period lacks is predicted: expected
        warnings.filterwarnings("ignore", "y_pred contains classes not in y_true")
        balanced = float(balanced_accuracy_score(y_test, predicted))
    return predicted, float(accuracy_score(y_test, predicted)), balanced


def regime_probe(
    latent_train: np.ndarray,
    labels_train: np.ndarray,
    latent_test: np.ndarray,
    labels_test: np.ndarray,
    *,
    raw_train: np.ndarray | None = None,
    raw_test: np.ndarray | None = None,
    seed: int = 0,
) -> ProbeResult:
    """Fit the probe on the training latents, score it on the test latents (see above)."""
    labels_train, labels_test = np.asarray(labels_train), np.asarray(labels_test)
    if len(np.unique(labels_train)) < 2:
        raise ValueError(
            f"the training windows hold a single regime ({labels_train[0]!r}); a probe "
            "needs at least two; use a longer training period"
        )
    predicted, accuracy, balanced = _fit_score(
        latent_train, labels_train, latent_test, labels_test, seed
    )
    _, counts = np.unique(labels_test, return_counts=True)
    raw = (
        _fit_score(raw_train, labels_train, raw_test, labels_test, seed)[1:]
        if raw_train is not None and raw_test is not None
        else (None, None)
    )
    return ProbeResult(
        accuracy=accuracy,
        balanced_accuracy=balanced,
        chance=float(counts.max() / counts.sum()),
        n_train=len(labels_train),
        n_test=len(labels_test),
        classes=sorted({*labels_train.tolist(), *labels_test.tolist()}),
        predicted=predicted,
        raw_accuracy=raw[0],
        raw_balanced_accuracy=raw[1],
    )


def plot_regime_timeline(
    dates: np.ndarray, true: np.ndarray, predicted: np.ndarray, path: str | Path
) -> Path:
    """A timeline of the true and the probed regime of each window, as two step lines."""
    from matplotlib.figure import Figure

    names = sorted({*np.asarray(true).tolist(), *np.asarray(predicted).tolist()})
    code = {name: i for i, name in enumerate(names)}
    dates = np.asarray(dates).astype("datetime64[D]")
    fig = Figure(figsize=(10, 1.2 + 0.45 * len(names)), layout="constrained")
    ax = fig.subplots()
    ax.step(dates, [code[v] for v in true], where="post", color="black", lw=2.2, label="true")
    probed = [code[v] for v in predicted]
    ax.step(dates, probed, where="post", color="tab:orange", lw=1.2, label="probed")
    ax.set_yticks(range(len(names)), names, fontsize=8)
    ax.set_ylim(-0.5, len(names) - 0.5)
    agree = float(np.mean(np.asarray(true) == np.asarray(predicted)))
    ax.set_title(f"regime: true vs probed ({agree:.0%} agree)", fontsize=9)
    ax.legend(fontsize=8, loc="upper right")
    path = Path(path)
    fig.savefig(path, dpi=110)
    return path


def blocked_probe(
    latent: np.ndarray,
    labels: np.ndarray,
    *,
    raw: np.ndarray | None = None,
    folds: int = 5,
    seed: int = 0,
) -> dict[str, Any]:
    """The probe scored on each of `folds` contiguous time blocks, fitted on the others.

    One held-out period may hold a single regime (then its chance level is 100% and the
    score says nothing); blocks spread the test over the whole history. Returns the
    window-weighted accuracy, chance level and raw-input accuracy over the blocks, and
    the out-of-block prediction of every window. Chance is the accuracy of always
    answering the most common regime of the other blocks.
    """
    labels = np.asarray(labels)
    blocks = np.array_split(np.arange(len(labels)), folds)
    predicted = np.empty(len(labels), dtype=labels.dtype)
    scores = {"accuracy": 0.0, "chance": 0.0, "raw_accuracy": 0.0, "windows": 0}
    for block in blocks:
        rest = np.setdiff1d(np.arange(len(labels)), block)
        if len(block) == 0 or len(np.unique(labels[rest])) < 2:
            continue
        result = regime_probe(
            latent[rest],
            labels[rest],
            latent[block],
            labels[block],
            raw_train=None if raw is None else raw[rest],
            raw_test=None if raw is None else raw[block],
            seed=seed,
        )
        predicted[block] = result.predicted
        n = len(block)
        scores["windows"] += n
        scores["accuracy"] += result.accuracy * n
        values, counts = np.unique(labels[rest], return_counts=True)
        scores["chance"] += float(np.mean(labels[block] == values[counts.argmax()])) * n
        scores["raw_accuracy"] += (result.raw_accuracy or 0.0) * n
    n = max(scores.pop("windows"), 1)
    out = {k: v / n for k, v in scores.items()}
    if raw is None:
        out.pop("raw_accuracy")
    return {**out, "folds": folds, "windows": n, "predicted": predicted}

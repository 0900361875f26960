"""Training pictures: loss curves, the curriculum timeline."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np


def plot_loss_curves(
    history: Sequence[dict[str, float]], path: str | Path, *, title: str = "training loss"
) -> Path:
    """Training (and validation, when logged) loss against step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.6))
    steps = [r["step"] for r in history]
    ax.plot(steps, [r["loss"] for r in history], label="train (masked)", color="#1f77b4")
    val = [(r["step"], r["val_loss"]) for r in history if "val_loss" in r]
    if val:
        ax.plot(
            *zip(*val, strict=True), label="validation", color="#d62728", marker="o", markersize=3
        )
    ax.set_xlabel("step")
    ax.set_ylabel("masked loss (normalised units)")
    ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title(title, fontsize=10)
    path = Path(path)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path


def plot_curriculum_timeline(results: Sequence[Any], path: str | Path) -> Path:
    """When each curriculum node trained: one bar per node, coloured by tier."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from warehouse.clock import as_timestamp

    ran = [r for r in results if r.started_at and r.finished_at and r.status == "trained"]
    fig, ax = plt.subplots(figsize=(8, 0.35 * max(4, len(results)) + 1))
    if ran:
        origin = min(as_timestamp(r.started_at) for r in ran)
        colours = plt.get_cmap("viridis")
        depth = max(r.tier for r in ran) or 1
        for row, r in enumerate(ran):
            start = (as_timestamp(r.started_at) - origin).total_seconds()
            length = (as_timestamp(r.finished_at) - origin).total_seconds() - start
            ax.barh(row, length, left=start, color=colours(r.tier / depth * 0.85))
        ax.set_yticks(range(len(ran)), [f"{r.name} (tier {r.tier})" for r in ran], fontsize=8)
        ax.invert_yaxis()
    ax.set_xlabel("seconds since the first node started")
    skipped = [r.name for r in results if r.status == "skipped"]
    reused = [r.name for r in results if r.status == "reused"]
    notes = [
        f"skipped: {', '.join(skipped)}" if skipped else "",
        f"reused: {len(reused)}" if reused else "",
    ]
    ax.set_title("curriculum run " + "; ".join(n for n in notes if n), fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    path = Path(path)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path


def plot_fans(fans: Any, path: str | Path, *, n_fields: int = 4) -> Path:
    """Fan charts: one-step forecasts with their 80% and 95% intervals against the actual
    values, in field units, for the `n_fields` fields with the most forecast cells
    (`fans`: the frame of `training.intervals.fan`)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import polars as pl

    counts = fans.group_by("field").len().sort(["len", "field"], descending=True)
    fields = counts["field"].head(n_fields).to_list()
    fig, axes = plt.subplots(max(1, len(fields)), 1, figsize=(9, 2.4 * max(1, len(fields))))
    for ax, field in zip(np.atleast_1d(axes), fields, strict=False):
        rows = fans.filter(pl.col("field") == field).sort("date")
        dates = rows["date"].to_numpy()
        ax.fill_between(dates, rows["lower_95"], rows["upper_95"], color="#9ecae1", label="95%")
        ax.fill_between(dates, rows["lower_80"], rows["upper_80"], color="#4292c6", label="80%")
        ax.plot(dates, rows["model"], color="#08306b", lw=1.2, label="forecast")
        ax.plot(dates, rows["actual"], color="black", lw=1.0, marker=".", ms=3, label="actual")
        ax.set_title(f"{field}: one-step forecast", fontsize=9)
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3)
    np.atleast_1d(axes)[0].legend(fontsize=8, ncol=4, loc="best")
    path = Path(path)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path

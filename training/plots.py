"""Training pictures: loss curves."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path


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

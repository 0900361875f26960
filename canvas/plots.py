"""Pictures of canvases: presence coverage per field over time."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from canvas.materialize import CanvasManifest


def coverage_by_window(directory: str | Path, manifest: CanvasManifest) -> np.ndarray:
    """(N, F) fraction of each window's time steps where a field has a value."""
    parts = [
        np.load(Path(directory) / shard["dir"] / "presence.npy", mmap_mode="r").mean(axis=1)
        for shard in manifest.shards
    ]
    return np.concatenate(parts, axis=0)


def plot_coverage(directory: str | Path, manifest: CanvasManifest, path: str | Path) -> Path:
    """Heatmap of presence per field (rows) over window end dates (columns)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    coverage = coverage_by_window(directory, manifest)
    ends = np.load(Path(directory) / "window_end.npy")
    observed = coverage.sum(axis=0) > 0
    fields = [f for f, keep in zip(manifest.fields, observed, strict=True) if keep]
    grid = coverage[:, observed].T
    height = max(3.0, 0.13 * len(fields) + 1.5)
    fig, ax = plt.subplots(figsize=(11, height))
    ax.imshow(grid, aspect="auto", cmap="viridis", vmin=0, vmax=1, interpolation="nearest")
    ax.set_yticks(range(len(fields)))
    ax.set_yticklabels(fields, fontsize=5 if len(fields) > 40 else 7)
    ticks = np.linspace(0, len(ends) - 1, min(10, len(ends))).astype(int)
    ax.set_xticks(ticks)
    ax.set_xticklabels([str(ends[i])[:7] for i in ticks], fontsize=7)
    for boundary in (manifest.splits["val"][0], manifest.splits["test"][0]):
        ax.axvline(boundary - 0.5, color="white", linewidth=1, linestyle="--")
    ax.set_title(
        f"presence per field over window end (T={manifest.T} x {manifest.step}); dashed: "
        f"train | val | test; {len(fields)} of {len(manifest.fields)} fields observed",
        fontsize=8,
    )
    path = Path(path)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path

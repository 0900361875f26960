"""Re-derive materialized windows from the warehouse: presence must match exactly."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from canvas.materialize import CanvasManifest
from warehouse.store import Warehouse


def verify_windows(
    warehouse: Warehouse,
    directory: str | Path,
    *,
    windows: list[int] | None = None,
    sources: list[str] | None = None,
    sample: int = 8,
) -> tuple[list[str], int]:
    """Compare stored presence with what the warehouse knew at each window's cutoff.

    Returns (problems, windows checked). A problem names the window, field and step.
    By default checks `sample` windows spread over the range, including the last.
    """
    directory = Path(directory)
    manifest = CanvasManifest.load(directory)
    edges = np.load(directory / "edges.npy")
    T = manifest.T
    if windows is None:
        windows = sorted(set(np.linspace(0, manifest.n_windows - 1, sample).astype(int)))
    index = {p: i for i, p in enumerate(manifest.fields)}
    untrained = set(manifest.untrained_fields)  # absent by design: no training statistics
    problems: list[str] = []
    for n in windows:
        shard = next(s for s in manifest.shards if s["first"] <= n < s["end"])
        presence = np.load(directory / shard["dir"] / "presence.npy", mmap_mode="r")
        stored = {
            (int(j), int(f)) for j, f in zip(*np.nonzero(presence[n - shard["first"]]), strict=True)
        }
        rows = warehouse.sql(
            "SELECT DISTINCT field_path, observed_at FROM observations "
            "WHERE known_at <= $cutoff AND observed_at >= $lo AND observed_at < $cutoff "
            "AND list_contains($fields, field_path)"
            + (" AND list_contains($sources, source)" if sources is not None else ""),
            {
                "cutoff": edges[n + T].item(),
                "lo": edges[n].item(),
                "fields": manifest.fields,
                **({"sources": sources} if sources is not None else {}),
            },
        )
        slots = np.searchsorted(edges, rows["observed_at"].to_numpy(), side="right") - 1 - n
        expected = {
            (int(j), index[p])
            for j, p in zip(slots, rows["field_path"], strict=True)
            if p not in untrained
        }
        for j, f in sorted(stored - expected)[:5]:
            problems.append(
                f"window {n}, step {j}, {manifest.fields[f]}: present but the "
                "warehouse knew no value by the cutoff"
            )
        for j, f in sorted(expected - stored)[:5]:
            problems.append(
                f"window {n}, step {j}, {manifest.fields[f]}: known by the cutoff but absent"
            )
    return problems, len(windows)

"""Re-derive materialized windows from the warehouse: presence must match exactly.

A field is present at a step when the warehouse knew a value for it by the window's
cutoff and that value can be transformed as the field declares (a differenced field needs
an earlier step of the window; a logarithm a positive value).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from canvas.align import window_cutoffs
from canvas.materialize import CanvasManifest
from canvas.stationary import CODES, LEVEL, forward
from warehouse.fields import Transform
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
    T, per_step = manifest.T, manifest.cutoffs_per_step
    cutoffs = window_cutoffs(edges, T, per_step)
    if windows is None:
        windows = sorted(set(np.linspace(0, manifest.n_windows - 1, sample).astype(int)))
    index = {p: i for i, p in enumerate(manifest.fields)}
    untrained = set(manifest.untrained_fields)  # absent by design: no training statistics
    codes = np.array(
        [CODES.index(Transform(manifest.transforms.get(p, "level"))) for p in manifest.fields],
        dtype=np.int8,
    )
    problems: list[str] = []
    for n in windows:
        shard = next(s for s in manifest.shards if s["first"] <= n < s["end"])
        presence = np.load(directory / shard["dir"] / "presence.npy", mmap_mode="r")
        stored = {
            (int(j), int(f)) for j, f in zip(*np.nonzero(presence[n - shard["first"]]), strict=True)
        }
        first_step = n // per_step
        rows = warehouse.sql(
            "SELECT field_path, observed_at, arg_max(value, known_at) AS value "
            "FROM observations "
            "WHERE known_at <= $cutoff AND observed_at >= $lo AND observed_at < $hi "
            "AND list_contains($fields, field_path)"
            + (" AND list_contains($sources, source)" if sources is not None else "")
            + " GROUP BY ALL ORDER BY field_path, observed_at",
            {
                "cutoff": cutoffs[n].item(),
                "lo": edges[first_step].item(),
                "hi": edges[first_step + T].item(),
                "fields": manifest.fields,
                **({"sources": sources} if sources is not None else {}),
            },
        )
        slots = np.searchsorted(edges, rows["observed_at"].to_numpy(), side="right") - 1
        slots -= first_step
        steps = (
            rows.with_columns(slot=slots, field=rows["field_path"].replace_strict(index))
            .filter(~pl.col("field_path").is_in(list(untrained)))
            .group_by("field", "slot", maintain_order=True)
            .agg(pl.col("value").last())  # the step's latest observation
            .with_columns(previous=pl.col("value").shift(1).over("field"))
        )
        field = steps["field"].to_numpy()
        t = forward(
            codes[field],
            steps["value"].fill_null(0.0).to_numpy(),  # a vector field's value is null
            steps["previous"].fill_null(np.nan).to_numpy(),
        )
        definable = np.isfinite(t) | (codes[field] == LEVEL)
        expected = {
            (int(j), int(f))
            for j, f in zip(steps["slot"].to_numpy()[definable], field[definable], strict=True)
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

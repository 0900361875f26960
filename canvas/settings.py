"""The canvas settings: which fields, the time grid and the split, declared once.

`materialize_canvas` takes them as arguments; the Dagster canvas config is built from
this dataclass (`warehouse.config`), so a setting added here reaches it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from warehouse.config import from_plain


@dataclass(frozen=True)
class CanvasSettings:
    """Which fields go on the canvas, its time grid and its train / validation split."""

    fields: tuple[str, ...] = ()  # prefixes or globs; empty: every field the sources observe
    T: int = 12
    step: str = "1mo"
    start: str | None = None  # default: the sources' start_date
    end: str | None = None  # default: the last observation of the sources
    train_end: str | None = None  # default: `canvas.align.DEFAULT_SPLIT` of the windows
    val_end: str | None = None
    # windows per step, cut at evenly spaced moments inside it (2: mid-month and month
    # end, chosen on validation: docs/world_model.md); evaluation uses the windows cut at
    # each step's end, training all of them
    cutoffs_per_step: int = 2

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> CanvasSettings:
        """Settings from plain config values (`warehouse.config.config_fields`)."""
        return from_plain(cls, raw)

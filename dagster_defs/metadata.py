"""Small helpers that show frames: as Dagster metadata, or as a table on the terminal."""

from __future__ import annotations

import base64
import math
from pathlib import Path
from typing import Any

import polars as pl


def markdown_table(frame: pl.DataFrame, *, max_rows: int = 20) -> str:
    """A Markdown table of the first `max_rows` rows (values rendered as text)."""
    shown = frame.head(max_rows).with_columns(pl.all().cast(pl.Utf8).fill_null(""))
    header = "| " + " | ".join(shown.columns) + " |"
    rule = "|" + "---|" * len(shown.columns)
    rows = ["| " + " | ".join(row) + " |" for row in shown.iter_rows()]
    more = [f"\n_{len(frame) - max_rows} more rows_"] if len(frame) > max_rows else []
    return "\n".join([header, rule, *rows, *more])


def print_table(frame: pl.DataFrame, *, max_rows: int = 50) -> None:
    """Print a frame as a readable table, at most `max_rows` rows."""
    with pl.Config(
        tbl_rows=max_rows,
        tbl_cols=-1,
        fmt_str_lengths=80,
        tbl_width_chars=200,
        tbl_hide_dataframe_shape=True,
        tbl_hide_column_data_types=True,
    ):
        print(frame)
    if len(frame) > max_rows:
        print(f"({len(frame)} rows, {max_rows} shown; use --format csv for all)")


def image_markdown(path: Path, *, alt: str = "plot") -> str:
    """Markdown that shows a PNG inline in the Dagster UI (a base64 data URI)."""
    encoded = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return f"![{alt}](data:image/png;base64,{encoded})"


def rounded(value: Any, significant: int = 4) -> Any:
    """`value` (nested dicts and lists) with every float at `significant` digits, for
    metadata a person reads (a ratio of 0.9871 tells what 0.98712443219 does)."""
    if isinstance(value, float):
        return float(f"{value:.{significant}g}") if math.isfinite(value) else value
    if isinstance(value, dict):
        return {k: rounded(v, significant) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [rounded(v, significant) for v in value]
    return value

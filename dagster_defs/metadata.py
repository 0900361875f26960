"""Small helpers that turn frames into Dagster metadata."""

from __future__ import annotations

import base64
from pathlib import Path

import polars as pl


def markdown_table(frame: pl.DataFrame, *, max_rows: int = 20) -> str:
    """A Markdown table of the first `max_rows` rows (values rendered as text)."""
    shown = frame.head(max_rows).with_columns(pl.all().cast(pl.Utf8).fill_null(""))
    header = "| " + " | ".join(shown.columns) + " |"
    rule = "|" + "---|" * len(shown.columns)
    rows = ["| " + " | ".join(row) + " |" for row in shown.iter_rows()]
    more = [f"\n_{len(frame) - max_rows} more rows_"] if len(frame) > max_rows else []
    return "\n".join([header, rule, *rows, *more])


def image_markdown(path: Path, *, alt: str = "plot") -> str:
    """Markdown that shows a PNG inline in the Dagster UI (a base64 data URI)."""
    encoded = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return f"![{alt}](data:image/png;base64,{encoded})"

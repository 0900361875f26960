"""The bench report's growth section: the table, the log-log slope and the plot."""

from __future__ import annotations

import pytest

from bench.__main__ import render_markdown
from bench.common import BenchResult, GrowthPoint, growth_exponent, plot_growth


def points(measure: str, power: float) -> list[GrowthPoint]:
    return [
        GrowthPoint(measure, n, "observations", 2e-7 * n**power, "parquet write", 1e-7 * n)
        for n in (1_000_000, 10_000_000, 50_000_000)
    ]


def test_growth_exponent_is_the_log_log_slope():
    assert growth_exponent(points("linear", 1.0)) == pytest.approx(1.0)
    assert growth_exponent(points("quadratic", 2.0)) == pytest.approx(2.0)
    assert growth_exponent(points("one size", 1.0)[:1]) is None


def test_report_lists_every_size_with_its_ratio_and_slope(tmp_path):
    result = BenchResult("ingest", growth=points("ingest", 1.0) + points("no-op", 2.0))
    report = render_markdown([result], "host", "now")
    rows = [line for line in report.splitlines() if line.startswith("| ingest |")]
    assert len(rows) == 3
    assert "| 10,000,000 observations | 2 | parquet write | 1 | 2.00x | 1.00 |" in rows[1]
    assert "| no-op | 50,000,000 observations |" in report and "| 2.00 |" in report
    plot = plot_growth(result.growth, tmp_path / "growth.png")
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

"""Timing and reporting helpers shared by the benchmarks."""

from __future__ import annotations

import platform
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch


@dataclass
class Measurement:
    """One benchmarked quantity, with the baseline it is compared to in the same run."""

    name: str
    value: float
    unit: str
    baseline_name: str | None = None
    baseline_value: float | None = None
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if self.baseline_value in (None, 0):
            return None
        return self.value / self.baseline_value


@dataclass(frozen=True)
class GrowthPoint:
    """One measure's cost at one data size, with its baseline's cost at that size."""

    measure: str
    size: int  # observations (or fields, see `size_unit`)
    size_unit: str
    seconds: float
    baseline: str
    baseline_seconds: float


@dataclass
class BenchResult:
    """The measurements of one benchmark, and how its costs grow with the data size."""

    benchmark: str
    measurements: list[Measurement] = field(default_factory=list)
    growth: list[GrowthPoint] = field(default_factory=list)

    def add(self, *args, **kwargs) -> Measurement:
        m = Measurement(*args, **kwargs)
        self.measurements.append(m)
        return m


def growth_exponent(points: list[GrowthPoint]) -> float | None:
    """The slope of log(seconds) against log(size), least squares: 1 is linear growth."""
    if len({p.size for p in points}) < 2:
        return None
    x = np.log([p.size for p in points])
    y = np.log([p.seconds for p in points])
    return float(np.polyfit(x, y, 1)[0])


def growth_markdown(points: list[GrowthPoint]) -> str:
    """The growth table: per measure and size, seconds against the baseline, and the
    log-log slope of each measure's cost over the sizes."""
    lines = [
        "| measure | size | seconds | baseline | baseline seconds | ratio | growth exponent |",
        "|---|---|---|---|---|---|---|",
    ]
    by_measure: dict[str, list[GrowthPoint]] = {}
    for p in points:
        by_measure.setdefault(p.measure, []).append(p)
    for measure, series in by_measure.items():
        exponent = growth_exponent(series)
        for p in sorted(series, key=lambda p: p.size):
            slope = f"{exponent:.2f}" if exponent is not None else ""
            lines.append(
                f"| {measure} | {p.size:,} {p.size_unit} | {p.seconds:.3g} | {p.baseline} | "
                f"{p.baseline_seconds:.3g} | {p.seconds / p.baseline_seconds:.2f}x | {slope} |"
            )
    return "\n".join(lines) + "\n"


def plot_growth(points: list[GrowthPoint], path: Path) -> Path:
    """Seconds against data size on log-log axes, one line per measure and its baseline
    dashed; one panel per size unit."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    units = sorted({p.size_unit for p in points})
    fig, axes = plt.subplots(1, len(units), figsize=(6 * len(units), 4.5), squeeze=False)
    for ax, unit in zip(axes[0], units, strict=True):
        measures = dict.fromkeys(p.measure for p in points if p.size_unit == unit)
        baselines: dict[str, str] = {}  # each baseline drawn once, dashed
        for i, measure in enumerate(measures):
            series = sorted((p for p in points if p.measure == measure), key=lambda p: p.size)
            sizes = [p.size for p in series]
            ax.plot(sizes, [p.seconds for p in series], "o-", color=f"C{i}", label=measure)
            baseline = series[0].baseline
            if baseline not in baselines:
                baselines[baseline] = f"C{len(measures) + len(baselines)}"
                ax.plot(
                    sizes,
                    [p.baseline_seconds for p in series],
                    "x--",
                    color=baselines[baseline],
                    label=f"{baseline} (baseline)",
                )
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(unit)
        ax.set_ylabel("seconds")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def timed(fn: Callable[[], object], *, repeat: int = 1) -> tuple[float, object]:
    """Best wall time of `repeat` calls (seconds) and the last call's result."""
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def machine() -> str:
    """A one-line description of the machine the figures came from."""
    import os

    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (
        f"{platform.machine()}, {os.cpu_count()} cores, {mem_gib:.0f} GiB RAM, "
        f"Python {platform.python_version()}, torch {torch.__version__}, "
        f"{platform.system()} {platform.release()}"
    )

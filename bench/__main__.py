"""Run every benchmark and write bench/results/report.md and report.json.

python -m bench            # full sizes
python -m bench --quick    # small sizes, a smoke run
python -m bench --only ingest
python -m bench --only choices   # the world model's choices on validation
python -m bench --only gpu       # training throughput on a CUDA device (else skipped)
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import json
import time
from pathlib import Path

from bench.common import BenchResult, growth_markdown, machine, plot_growth

BENCHMARKS = {
    "ingest": "bench.ingest_bench",
    "canvas": "bench.canvas_bench",
    "training": "bench.training_bench",
    "quality": "bench.quality_bench",
    "choices": "bench.choices_bench",
    "gpu": "bench.gpu_bench",
}
RESULTS = Path(__file__).parent / "results"
GROWTH_PLOT = "growth.png"


def render_markdown(results: list[BenchResult], host: str, when: str) -> str:
    lines = [
        f"Measured {when} on {host}. Ratios compare against a baseline measured in the same run.",
        "",
        "| benchmark | measure | value | baseline | ratio | note |",
        "|---|---|---|---|---|---|",
    ]
    for res in results:
        for m in res.measurements:
            base = (
                f"{m.baseline_name}: {m.baseline_value:,.3g} {m.unit}"
                if m.baseline_value is not None
                else ""
            )
            ratio = f"{m.ratio:.2f}x" if m.ratio is not None else ""
            lines.append(
                f"| {res.benchmark} | {m.name} | {m.value:,.3g} {m.unit} | {base} | "
                f"{ratio} | {m.note} |"
            )
    growth = [p for res in results for p in res.growth]
    if growth:
        lines += [
            "",
            f"## Growth with the data size (log-log plot: {GROWTH_PLOT})",
            "",
            "The growth exponent is the slope of log(seconds) against log(size): 1 is linear.",
            "",
            growth_markdown(growth),
        ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="small sizes")
    parser.add_argument("--only", action="append", choices=sorted(BENCHMARKS))
    args = parser.parse_args()
    results = []
    for name in args.only or list(BENCHMARKS):
        print(f"[bench] {name} …", flush=True)
        started = time.perf_counter()
        results.append(importlib.import_module(BENCHMARKS[name]).run(quick=args.quick))
        print(f"[bench] {name} done in {time.perf_counter() - started:.0f}s", flush=True)
    host = machine()
    when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    RESULTS.mkdir(exist_ok=True)
    report = render_markdown(results, host, when)
    growth = [p for res in results for p in res.growth]
    if growth:
        plot_growth(growth, RESULTS / GROWTH_PLOT)
    (RESULTS / "report.md").write_text(report)
    (RESULTS / "report.json").write_text(
        json.dumps(
            {
                "machine": host,
                "when": when,
                "quick": args.quick,
                "results": [
                    {
                        "benchmark": r.benchmark,
                        "measurements": [{**m.__dict__, "ratio": m.ratio} for m in r.measurements],
                        "growth": [p.__dict__ for p in r.growth],
                    }
                    for r in results
                ],
            },
            indent=2,
        )
    )
    print(report)


if __name__ == "__main__":
    main()

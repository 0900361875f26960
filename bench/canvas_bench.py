"""Canvas materialization: 10 years of daily fields into shards, against a memcpy, at two
sizes (1,000 and 5,000 fields) for the growth table."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from bench.common import BenchResult, GrowthPoint, timed
from bench.ingest_bench import synthetic_observations
from warehouse.store import Warehouse

GROWTH_FIELDS = (1000, 5000)
QUICK_GROWTH_FIELDS = (100, 500)
N_DAYS = 3650
T = 32
INGEST_FIELDS = 1000  # fields per ingest: the warehouse's memory stays that of 3.65M rows
COPY_BYTES = 2**30  # the memcpy baseline copies the output's bytes in pieces of this size
REPEAT = 3  # fresh processes per size: the best time is kept, as for the baselines

# Peak RSS is the child's VmHWM: unlike ru_maxrss (kept across exec on Linux), it starts
# afresh in the new process, so the parent's memory never counts. The warehouse is opened
# before the clock starts: materialization is timed, not the warehouse's schema checks.
CHILD = """
import json, re, sys, time
from pathlib import Path
def peak_mb():
    status = Path("/proc/self/status").read_text()
    return int(re.search(r"VmHWM:\\s+(\\d+) kB", status).group(1)) / 1024
from canvas.layout import compile_layout
from canvas.materialize import materialize_canvas
from warehouse.schema import default_schema
from warehouse.store import Warehouse
n_fields, T, path, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
schema = default_schema().with_entities([f"B{i:05d}" for i in range(n_fields)])
layout = compile_layout("firm_*.earnings.eps_actual", schema=schema, T=T, step="1d",
                        include_latent=False)
t0 = time.perf_counter()
wh = Warehouse(path, schema=schema)
open_s = time.perf_counter() - t0
before = peak_mb()
t0 = time.perf_counter()
m = materialize_canvas(wh, layout, out, start="1990-01-01", end="1999-12-31")
print(json.dumps({"seconds": time.perf_counter() - t0, "observations": m.observations,
                  "windows": m.n_windows, "fields": layout.n_fields, "open_s": open_s,
                  "rss_before_mb": before, "peak_rss_mb": peak_mb()}))
"""


def measure(n_fields: int, n_days: int = N_DAYS) -> dict[str, float]:
    """Materialize n_fields x n_days daily observations (T=32) in a child process, the best
    of `REPEAT` (the highest peak RSS of them); the output's bytes and the seconds numpy
    takes to copy as many (`COPY_BYTES` at a time)."""
    frame = synthetic_observations(n_fields, n_days)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.duckdb"
        wh = Warehouse(path)
        for first in range(0, n_fields, INGEST_FIELDS):
            wh.ingest(frame.slice(first * n_days, INGEST_FIELDS * n_days), source="bench")
        del frame
        out = Path(tmp) / "canvas"
        runs = [_materialize_in_child(n_fields, path, out) for _ in range(REPEAT)]
        stats = {
            **min(runs, key=lambda r: r["seconds"]),
            "peak_rss_mb": max(r["peak_rss_mb"] for r in runs),
        }
        out_bytes = sum(f.stat().st_size for f in out.rglob("*.npy"))
        copies = -(-out_bytes // COPY_BYTES)
        source = np.ones(out_bytes // copies // 4, dtype=np.float32)
        target = np.empty_like(source)
        memcpy_s, _ = timed(lambda: [np.copyto(target, source) for _ in range(copies)], repeat=3)
        write_s, _ = timed(lambda: _write_files(source, copies, Path(tmp) / "plain"), repeat=2)
    return {**stats, "out_bytes": out_bytes, "memcpy_s": memcpy_s, "write_s": write_s}


def _materialize_in_child(n_fields: int, path: Path, out: Path) -> dict[str, float]:
    """One materialization in a fresh process (`CHILD`), replacing an earlier output."""
    shutil.rmtree(out, ignore_errors=True)
    child = subprocess.run(
        [sys.executable, "-c", CHILD, str(n_fields), str(T), str(path), str(out)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(child.stdout.strip().splitlines()[-1])


def _write_files(block: np.ndarray, copies: int, directory: Path) -> None:
    """`copies` x `block` written to new files beside the shards (the file system's own
    cost of the output), replacing an earlier such write."""
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir()
    for i in range(copies):
        with open(directory / f"part_{i}.bin", "wb") as f:
            f.write(block)


def run(*, quick: bool = False) -> BenchResult:
    """Materialize 10 years of 1,000 and 5,000 daily fields (100 and 500 in quick mode)."""
    result = BenchResult("canvas")
    for n_fields in QUICK_GROWTH_FIELDS if quick else GROWTH_FIELDS:
        m = measure(n_fields)
        size, seconds, out_bytes = f"{n_fields:,} fields", m["seconds"], m["out_bytes"]
        result.add(
            f"materialize throughput, {size}",
            m["observations"] / seconds,
            "obs/s",
            note=f"{m['observations']:,} observations -> {m['windows']:,} windows x "
            f"{T} steps x {m['fields']:,} fields in {seconds:.1f}s (opening the warehouse: "
            f"{m['open_s']:.1f}s more)",
        )
        result.add(
            f"materialize output rate, {size}",
            out_bytes / seconds / 1e9,
            "GB/s",
            "numpy memcpy",
            out_bytes / m["memcpy_s"] / 1e9,
            note=f"{out_bytes / 1e9:.2f} GB of shards, written to new files",
        )
        result.add(
            f"materialize time against writing its bytes, {size}",
            seconds,
            "s",
            "plain file write of the same bytes",
            m["write_s"],
            note="the same number of bytes written to new files on the same file system",
        )
        result.add(
            f"materialize peak RSS, {size}",
            m["peak_rss_mb"],
            "MiB",
            "output size",
            out_bytes / 2**20,
            note=f"child process ({m['rss_before_mb']:.0f} MiB with the warehouse open); "
            "shards are written, not mapped, so their pages are the page cache's",
        )
        result.growth.append(
            GrowthPoint(
                "canvas materialize", n_fields, "fields", seconds, "numpy memcpy", m["memcpy_s"]
            )
        )
    return result

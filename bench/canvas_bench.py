"""Canvas materialization: 10 years x 1,000 daily fields into shards, against a memcpy."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from bench.common import BenchResult, timed
from bench.ingest_bench import synthetic_observations
from warehouse.store import Warehouse

# Peak RSS is the child's VmHWM: unlike ru_maxrss (kept across exec on Linux), it starts
# afresh in the new process, so the parent's memory never counts.
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
before = peak_mb()
t0 = time.perf_counter()
m = materialize_canvas(Warehouse(path, schema=schema), layout, out, start="1990-01-01",
                       end="1999-12-31")
print(json.dumps({"seconds": time.perf_counter() - t0, "observations": m.observations,
                  "windows": m.n_windows, "fields": layout.n_fields,
                  "rss_before_mb": before, "peak_rss_mb": peak_mb()}))
"""


def run(*, quick: bool = False) -> BenchResult:
    """Materialize 10 years x 1,000 daily fields (100 fields in quick mode), T=32."""
    n_fields, n_days, T = (1000 if not quick else 100), 3650, 32
    result = BenchResult("canvas")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.duckdb"
        Warehouse(path).ingest(synthetic_observations(n_fields, n_days), source="bench")
        out = Path(tmp) / "canvas"
        child = subprocess.run(
            [sys.executable, "-c", CHILD, str(n_fields), str(T), str(path), str(out)],
            capture_output=True,
            text=True,
            check=True,
        )
        stats = json.loads(child.stdout.strip().splitlines()[-1])
        out_bytes = sum(f.stat().st_size for f in out.rglob("*.npy"))
        source = np.ones(out_bytes // 4, dtype=np.float32)
        target = np.empty_like(source)
        memcpy_s, _ = timed(lambda: np.copyto(target, source), repeat=3)
    seconds = stats["seconds"]
    result.add(
        "materialize throughput",
        stats["observations"] / seconds,
        "obs/s",
        note=f"{stats['observations']:,} observations -> {stats['windows']:,} windows x "
        f"{T} steps x {stats['fields']} fields in {seconds:.1f}s",
    )
    result.add(
        "materialize output rate",
        out_bytes / seconds / 1e9,
        "GB/s",
        "numpy memcpy",
        out_bytes / memcpy_s / 1e9,
        note=f"{out_bytes / 1e9:.2f} GB of shards",
    )
    result.add(
        "materialize peak RSS",
        stats["peak_rss_mb"],
        "MiB",
        "output size",
        out_bytes / 2**20,
        note=f"child process ({stats['rss_before_mb']:.0f} MiB after imports; the shards' "
        "resident pages count too); field chunks of at most 5M placements",
    )
    return result

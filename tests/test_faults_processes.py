"""Processes killed mid-write, and two writers at once.

* A writer SIGKILLed inside its ingest transaction (after its INSERT, before COMMIT, as
  signalled by the child), and at random moments of a 200,000-row ingest: the warehouse
  opens and holds the state before the ingest or the one after it, never a part; a
  re-ingest then succeeds.
* A trainer SIGKILLed while it writes a checkpoint (seen from outside: its staging
  directory exists) and at random moments: the latest checkpoint always loads, and a
  resumed `MaskedCanvasTrainer.train` continues from it.
* Two processes ingesting into one file: the second waits for the lock and both commit
  (exactly the union a sequential ingest gives), or with a short `lock_timeout` it fails
  with `WarehouseLockedError` naming the file.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import polars as pl
import pytest
import torch
from faults_support import (
    NOW,
    Snapshot,
    make_trainer,
    wait_for_line,
    warehouse_with_prior_data,
)

from training.checkpoint import latest_checkpoint, load_checkpoint, trainable_state
from warehouse.store import Warehouse

pytestmark = pytest.mark.faults

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent

INGEST_CHILD = r"""
import datetime as dt, json, sys, time
import polars as pl
import warehouse.store as store

path, batch, mode, lock_timeout, hold = sys.argv[1:6]
frame = pl.read_parquet(batch)
if mode in ("hang", "hold"):
    refresh = store._refresh_wide_view

    def inside(con):  # runs after the INSERT, inside the open transaction
        refresh(con)
        print("inside", flush=True)
        time.sleep(3600 if mode == "hang" else float(hold))

    store._refresh_wide_view = inside
print("start", flush=True)
started = time.monotonic()
try:  # opening the file waits for the lock too
    wh = store.Warehouse(path, lock_timeout=float(lock_timeout))
    report = wh.ingest(frame, source="fred", now=dt.datetime(2025, 6, 1))
except store.WarehouseLockedError as err:
    print("result " + json.dumps({"locked": str(err)}), flush=True)
    sys.exit(3)
seconds = time.monotonic() - started
print("result " + json.dumps({"inserted": report.rows_inserted, "seconds": seconds}), flush=True)
"""

TRAIN_CHILD = r"""
import sys
import torch
torch.set_num_threads(1)
from faults_support import make_trainer
trainer, loader = make_trainer(sys.argv[1])
print("training", flush=True)
trainer.train(loader, 10**6)
"""


def _env() -> dict[str, str]:
    path = os.pathsep.join([str(REPO), str(TESTS), os.environ.get("PYTHONPATH", "")])
    return {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": "1"}


def spawn(script: str, *args: object) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", script, *map(str, args)],
        cwd=REPO,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def kill(proc: subprocess.Popen) -> None:
    """SIGKILL: no handler, no cleanup, no flush."""
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    proc.stdout.close()
    proc.stderr.close()


def result_of(proc: subprocess.Popen, timeout: float = 120.0) -> tuple[int, dict]:
    line = wait_for_line(proc, "result", timeout)
    code = proc.wait(timeout=timeout)
    proc.stdout.close()
    proc.stderr.close()
    return code, json.loads(line.removeprefix("result "))


def long_batch(paths: list[str], days: int, start: dt.datetime) -> pl.DataFrame:
    dates = pl.datetime_range(start, start + dt.timedelta(days=days - 1), "1d", eager=True)
    return pl.concat(
        [
            pl.DataFrame({"observed_at": dates}).with_columns(
                pl.lit(path).alias("field_path"),
                # 0 to 0.75: inside every field's plausible range
                ((pl.int_range(pl.len()) + i) % 4 * 0.25).cast(pl.Float64).alias("value"),
                (pl.col("observed_at") + pl.duration(days=1)).alias("known_at"),
            )
            for i, path in enumerate(paths)
        ]
    ).select("field_path", "observed_at", "value", "known_at")


def copy_warehouse(source: Path, target: Path) -> Path:
    for suffix in ("", ".wal"):
        if Path(f"{source}{suffix}").exists():
            shutil.copy(f"{source}{suffix}", f"{target}{suffix}")
    return target


def snapshot(path: Path) -> Snapshot:
    return Snapshot.of(Warehouse(path, lock_timeout=10))


@pytest.fixture(scope="module")
def batches(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """A warehouse with earlier data, batches A (200,000 rows) and B (some rows of A again,
    and rows of its own), and the states a sequential ingest gives."""
    root = tmp_path_factory.mktemp("writers")
    pre = root / "pre.duckdb"
    schema = warehouse_with_prior_data(pre).schema
    scalar = [p for p in sorted(schema.paths) if schema.field(p).dimension == 1]
    scalar = [p for p in scalar if not schema.field(p).latent]
    a = long_batch(scalar[:50], 4000, dt.datetime(1950, 1, 1))
    b = pl.concat([a.head(500), long_batch(scalar[50:60], 1000, dt.datetime(1960, 1, 1))])
    a.write_parquet(root / "a.parquet")
    b.write_parquet(root / "b.parquet")
    after_a = copy_warehouse(pre, root / "after_a.duckdb")
    started = time.perf_counter()
    Warehouse(after_a).ingest(a, source="fred", now=NOW)
    seconds = time.perf_counter() - started
    after_ab = copy_warehouse(after_a, root / "after_ab.duckdb")
    Warehouse(after_ab).ingest(b, source="fred", now=NOW)
    return SimpleNamespace(
        root=root,
        pre=pre,
        a=a,
        b=b,
        a_file=root / "a.parquet",
        b_file=root / "b.parquet",
        ingest_seconds=seconds,
        before=snapshot(pre),
        after_a=snapshot(after_a),
        after_ab=snapshot(after_ab),
    )


# -- a writer killed mid-transaction ----------------------------------------------------------


def test_a_writer_killed_inside_its_transaction_leaves_the_state_before(batches, tmp_path):
    path = copy_warehouse(batches.pre, tmp_path / "wh.duckdb")
    proc = spawn(INGEST_CHILD, path, batches.a_file, "hang", 60, 0)
    try:
        wait_for_line(proc, "inside")  # 200,000 rows inserted, not committed
    finally:
        kill(proc)
    assert snapshot(path) == batches.before
    report = Warehouse(path).ingest(batches.a, source="fred", now=NOW)
    assert report.rows_inserted == len(batches.a)
    assert snapshot(path) == batches.after_a


def test_writers_killed_at_random_moments_leave_all_or_nothing(batches, tmp_path):
    rng = random.Random(20261125)
    outcomes = []
    for i in range(4):
        path = copy_warehouse(batches.pre, tmp_path / f"wh{i}.duckdb")
        proc = spawn(INGEST_CHILD, path, batches.a_file, "plain", 60, 0)
        try:
            wait_for_line(proc, "start")
            time.sleep(rng.uniform(0.0, 1.5 * batches.ingest_seconds))
        finally:
            kill(proc)
        state = snapshot(path)
        assert state in (batches.before, batches.after_a), f"partial state after kill {i}"
        outcomes.append("committed" if state == batches.after_a else "rolled back")
        Warehouse(path).ingest(batches.a, source="fred", now=NOW)  # a retry completes it
        assert (snapshot(path).count, snapshot(path).content_hash) == (
            batches.after_a.count,
            batches.after_a.content_hash,
        )
    print("kills:", outcomes)


# -- a trainer killed mid-checkpoint -------------------------------------------------------------


def _staging(run_dir: Path) -> set[str]:
    try:
        return {n for n in os.listdir(run_dir) if n.startswith(".step_")}
    except FileNotFoundError:
        return set()


def _latest_step(run_dir: Path) -> int:
    path = latest_checkpoint(run_dir)
    return -1 if path is None else int(path.name.removeprefix("step_"))


def _wait_for_checkpoint_write(proc: subprocess.Popen, run_dir: Path, after: int) -> None:
    """Poll (no hook in the trainer) until the run has completed a checkpoint after step
    `after`, then until the next checkpoint's staging directory appears: a write in
    progress, while a newer complete checkpoint exists."""
    deadline = time.monotonic() + 120
    stale: set[str] | None = None
    while time.monotonic() < deadline:
        if stale is None:
            if _latest_step(run_dir) > after:
                stale = _staging(run_dir)
        elif _staging(run_dir) - stale:
            return
        if proc.poll() is not None:
            raise AssertionError(f"the trainer exited: {proc.stderr.read()[-2000:]}")
        time.sleep(0.001)
    raise AssertionError("no checkpoint write seen within 120s")


def test_a_trainer_killed_while_writing_checkpoints_resumes_from_the_last(tmp_path):
    torch.set_num_threads(1)
    run_dir = tmp_path / "run"
    rng = random.Random(7)
    steps = [0]
    for i in range(3):
        proc = spawn(TRAIN_CHILD, run_dir)
        try:
            wait_for_line(proc, "training")
            _wait_for_checkpoint_write(proc, run_dir, after=steps[-1])
            if i % 2 == 0:  # inside save_checkpoint: its staging directory is being written
                time.sleep(rng.uniform(0.0, 0.03))
            else:  # anywhere: a step, a save, the pointer swap, the pruning
                time.sleep(rng.uniform(0.0, 0.5))
        finally:
            kill(proc)
        assert latest_checkpoint(run_dir) is not None
        checkpoint = load_checkpoint(run_dir)
        assert checkpoint.step > steps[-1], "the run did not resume and move on"
        assert all(torch.isfinite(w).all() for w in checkpoint.weights.values())
        steps.append(checkpoint.step)

    trainer, loader = make_trainer(run_dir)
    trainer.load(run_dir)
    assert trainer.step == steps[-1]
    saved = load_checkpoint(run_dir).weights
    for name, weight in trainable_state(trainer.modules).items():
        assert torch.equal(weight, saved[name]), name
    history = trainer.train(loader, steps[-1] + 2)
    assert trainer.step == steps[-1] + 2
    assert [r["step"] for r in history[-2:]] == [steps[-1] + 1, steps[-1] + 2]
    assert load_checkpoint(run_dir).step == steps[-1] + 2


# -- two writers at once ------------------------------------------------------------------------


def test_a_second_writer_waits_for_the_first_and_both_commit(batches, tmp_path):
    path = copy_warehouse(batches.pre, tmp_path / "wh.duckdb")
    first = spawn(INGEST_CHILD, path, batches.a_file, "hold", 60, 1.5)
    wait_for_line(first, "inside")  # the first writer holds the file, mid-transaction
    second = spawn(INGEST_CHILD, path, batches.b_file, "plain", 60, 0)
    (code_a, out_a), (code_b, out_b) = result_of(first), result_of(second)
    assert (code_a, code_b) == (0, 0)
    assert out_a["inserted"] == len(batches.a)
    assert out_b["inserted"] == len(batches.b) - 500  # B's rows of A were already there
    assert snapshot(path) == batches.after_ab


def test_a_writer_with_a_short_lock_timeout_fails_naming_the_file(batches, tmp_path):
    path = copy_warehouse(batches.pre, tmp_path / "wh.duckdb")
    first = spawn(INGEST_CHILD, path, batches.a_file, "hold", 60, 2.0)
    wait_for_line(first, "inside")
    second = spawn(INGEST_CHILD, path, batches.b_file, "plain", 0.3, 0)
    code_b, out_b = result_of(second)
    code_a, _ = result_of(first)
    assert (code_a, code_b) == (0, 3)
    assert f"warehouse {path} is locked by another process" in out_b["locked"]
    assert snapshot(path) == batches.after_a  # the first batch, nothing of the second


def test_two_writers_started_together_give_the_union(batches, tmp_path):
    path = copy_warehouse(batches.pre, tmp_path / "wh.duckdb")
    files = (batches.b_file, batches.a_file)
    writers = [spawn(INGEST_CHILD, path, f, "plain", 60, 0) for f in files]
    outcomes = [result_of(w) for w in writers]
    assert [code for code, _ in outcomes] == [0, 0]
    # whichever committed first, the overlap is stored once and the content is the union
    assert sum(out["inserted"] for _, out in outcomes) == len(batches.a) + len(batches.b) - 500
    assert snapshot(path) == batches.after_ab

"""The GPU benchmark's code path on a CPU at tiny sizes: the code, not the figures."""

from __future__ import annotations

import pytest
import torch

from bench import gpu_bench
from bench.__main__ import BENCHMARKS, render_markdown
from bench.gpu_bench import (
    TINY_MAX_BATCH,
    BatchSearch,
    Measured,
    largest_batch,
    measure,
    to_result,
)
from bench.training_bench import TINY_COGVIDEOX
from training.compute import H100_BF16_DENSE_FLOPS, estimate_compute, step_flops
from training.dag import standard_dag
from training.settings import CurriculumSettings

pytestmark = pytest.mark.usefixtures("single_thread")
TINY = CurriculumSettings(T=4, d_model=32, adapter_rank=4, device="cpu")


@pytest.fixture(scope="module")
def measured() -> Measured:
    return measure(torch.device("cpu"), tiny=True)


def test_tiny_runs_time_training_steps_at_the_capped_batch(measured: Measured) -> None:
    assert measured.device_name == "cpu" and measured.matmul_flops_per_s > 0
    assert [r.config.label for r in measured.runs] == ["tiny CogVideoX graft", "scratch factorized"]
    for run, backbone, transformer in zip(
        measured.runs, ("cogvideox", "scratch"), (TINY_COGVIDEOX, None), strict=True
    ):
        # the curriculum's batch (16) is above the cap: only the largest batch is timed
        assert run.batch == TINY_MAX_BATCH
        assert run.search == f"largest that fits: cap {TINY_MAX_BATCH}"
        assert run.step_s > 0
        layout = run.config.layout
        assert (layout.T, layout.d_model) == (4, 32) and layout.vector_fields
        assert run.positions == layout.T * layout.H * layout.W == layout.n_positions
        assert run.positions_per_s == pytest.approx(run.batch * run.positions / run.step_s)
        settings = TINY.override(backbone=backbone, batch_size=TINY_MAX_BATCH)
        expected = step_flops(layout, settings, transformer_config=transformer).total
        assert run.flops == expected > 0
        assert run.mfu == pytest.approx(expected / run.step_s / H100_BF16_DENSE_FLOPS)
        assert run.peak_memory is None  # no GPU memory off CUDA
        assert "not in the peak table" in run.peak_source


def test_report_rows_and_tier_table_from_the_measured_speed(measured: Measured) -> None:
    result = to_result(measured)
    names = [m.name for m in result.measurements]
    assert not any("peak GPU memory" in n for n in names)
    for run in measured.runs:
        label = f"{run.config.label}, batch {run.batch}"
        rows = {m.name: m for m in result.measurements}
        assert rows[f"{label}: step time"].value == run.step_s
        assert rows[f"{label}: canvas positions/s"].value == run.positions_per_s
        mfu = rows[f"{label}: MFU"]
        assert mfu.value == pytest.approx(100 * run.mfu)
        assert mfu.baseline_value == pytest.approx(100 * measured.matmul_flops_per_s / 989e12)

        # the tier table: the curriculum's FLOPs (batch 16) at the measured FLOP/s
        transformer = run.config.transformer_config
        settings = run.config.settings
        assert settings.batch_size == 16
        estimate = estimate_compute(
            standard_dag(), settings, utilisation=run.mfu, transformer_config=transformer
        )
        assumed = estimate_compute(standard_dag(), settings, transformer_config=transformer)
        for tier, nodes in estimate.by_tier().items():
            row = rows[f"{run.config.label}: tier {tier} GPU-hours/node (slowest)"]
            slowest = max(n["steps"] * n["flops_per_step"] for n in nodes)
            assert row.value == pytest.approx(slowest / run.flops_per_s / 3600)
            assert row.baseline_value == pytest.approx(
                max(n["h100_hours"] for n in assumed.by_tier()[tier])
            )
        total = rows[f"{run.config.label}: standard curriculum GPU-hours"]
        assert total.value == pytest.approx(estimate.total_flops / run.flops_per_s / 3600)
    assert sum(": tier " in n for n in names) == 2 * 4


def test_batch_search_keeps_the_last_batch_before_out_of_memory() -> None:
    tried = []

    def step(batch: int) -> float:  # a stand-in for a training step on a 8-sample card
        tried.append(batch)
        if batch > 8:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (stand-in)")
        return 0.01

    assert largest_batch(step, cap=1024) == BatchSearch(8, "out of memory at 16")
    assert tried == [1, 2, 4, 8, 16]

    def nothing_fits(batch: int) -> float:
        raise torch.cuda.OutOfMemoryError("CUDA out of memory (stand-in)")

    with pytest.raises(RuntimeError, match="batch of 1 does not fit"):
        largest_batch(nothing_fits, cap=1024)


def test_batch_search_stops_at_the_cap_and_before_slow_steps() -> None:
    assert largest_batch(lambda batch: 0.0, cap=6) == BatchSearch(4, "cap 6")
    # 0.1 s per sample: 8 takes 0.8 s, so 16 would take 1.6 s, past 1 s
    slow = largest_batch(lambda batch: 0.1 * batch, cap=1024, max_step_s=1.0)
    assert slow == BatchSearch(8, "a step of 16 would pass 1 s")


def test_without_cuda_the_report_has_the_skip_row(monkeypatch: pytest.MonkeyPatch) -> None:
    assert BENCHMARKS["gpu"] == "bench.gpu_bench"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    result = gpu_bench.run(quick=False)
    assert [m.name for m in result.measurements] == ["skipped: no CUDA device"]
    assert "| gpu | skipped: no CUDA device |" in render_markdown([result], "host", "now")

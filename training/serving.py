"""The served world model and the gate a trained run passes to become it.

    result = gate(evaluate(model.parts, val, dataset_train=train, tasks=GATE_TASKS).summary)
    if result.passed:
        promote(root, run_dir, canvas_dir, result)
    WorldModel.load()  # the served run

A run is promoted only when, on the validation period (never the test period), its
pooled MSE is below every gate baseline's on every gate task. Promotion copies the
canvas manifest the run was trained on beside its checkpoints (a later canvas with
other statistics cannot change how the served model reads the warehouse) and replaces
`<root>/served.json` in one rename; a refused run leaves the served one in place.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from canvas.materialize import MANIFEST
from warehouse.paths import default_artifacts_dir

WORLD_MODEL = "world_model"  # the world model's folder in the artifacts directory
SERVED = "served.json"
GATE_TASKS = ("forecast", "nowcast")
GATE_BASELINES = ("persistence", "mean", "ar1")


@dataclass(frozen=True)
class GateResult:
    """Whether a run beats the baselines: the ratios (task -> baseline -> model MSE /
    baseline MSE on validation) and, when refused, why."""

    passed: bool
    ratios: dict[str, dict[str, float]]
    failures: list[str]

    def to_markdown(self) -> str:
        """The ratios as a table, each marked pass or fail."""
        baselines = sorted({b for row in self.ratios.values() for b in row})
        lines = ["| task | " + " | ".join(f"vs {b}" for b in baselines) + " |"]
        lines.append("|---|" + "---|" * len(baselines))
        for task, row in self.ratios.items():
            cells = [_mark(row.get(b, math.nan)) for b in baselines]
            lines.append(f"| {task} | " + " | ".join(cells) + " |")
        return "\n".join(lines)


def _mark(ratio: float) -> str:
    return f"{ratio:.3f} {'ok' if ratio < 1 else 'FAIL'}"


def gate(
    summary: Mapping[str, Any],
    *,
    tasks: Sequence[str] = GATE_TASKS,
    baselines: Sequence[str] = GATE_BASELINES,
) -> GateResult:
    """Pass when every pooled ratio of `tasks` x `baselines` in an evaluation summary is
    below 1; a ratio that is missing or NaN fails."""
    ratios, failures = {}, []
    for task in tasks:
        row = summary.get(task, {}).get("ratio", {})
        ratios[task] = {b: float(row.get(b, math.nan)) for b in baselines}
        for b, ratio in ratios[task].items():
            if not ratio < 1.0:
                failures.append(f"{task}: {ratio:.3f} x the MSE of {b}")
    return GateResult(passed=not failures, ratios=ratios, failures=failures)


def promote(
    root: str | Path, run_dir: str | Path, canvas_dir: str | Path, result: GateResult
) -> Path:
    """Serve `run_dir`: its canvas manifest is kept beside it and `<root>/served.json`
    replaced atomically. Refuses a result that did not pass."""
    if not result.passed:
        raise ValueError(f"refusing to serve {run_dir}: {'; '.join(result.failures)}")
    root, run_dir = Path(root), Path(run_dir)
    kept = run_dir / "canvas"
    kept.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(Path(canvas_dir) / MANIFEST, kept / MANIFEST)
    record = {
        "run": str(run_dir.resolve()),
        "canvas": str(kept.resolve()),
        "promoted_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "validation": result.ratios,
    }
    root.mkdir(parents=True, exist_ok=True)
    staging = root / f".{SERVED}.{os.getpid()}"
    staging.write_text(json.dumps(record, indent=1))
    staging.replace(root / SERVED)
    return root / SERVED


def world_model_root(artifacts: str | Path | None = None) -> Path:
    """Where the world model's runs and `served.json` live: its folder under `artifacts`
    (default: the default artifacts directory)."""
    return Path(artifacts or default_artifacts_dir()) / WORLD_MODEL


def served(root: str | Path) -> dict[str, Any] | None:
    """The served run's record (run, canvas, promoted_at, validation), or None."""
    path = Path(root) / SERVED
    return json.loads(path.read_text()) if path.is_file() else None

"""Checkpoints: safetensors weights + optimiser/step state + layout hash, written atomically.

    <dir>/step_000200/weights.safetensors   trainable weights of every module
    <dir>/step_000200/state.pt              optimiser, scheduler, step, config, rng
    <dir>/step_000200/meta.json             layout hash, step, modules
    <dir>/latest                            name of the newest complete checkpoint

A checkpoint directory is complete once `latest` names it: a run killed mid-write
leaves the previous one in force.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from warehouse.paths import staged_directory

LATEST = "latest"


def trainable_state(modules: dict[str, nn.Module]) -> dict[str, torch.Tensor]:
    """Flat `module.name` -> tensor of every parameter that trains (frozen ones excluded)."""
    state = {}
    for prefix, module in modules.items():
        for name, param in module.named_parameters():
            if param.requires_grad:
                state[f"{prefix}.{name}"] = param.detach().to("cpu", torch.float32).contiguous()
    return state


def load_trainable_state(modules: dict[str, nn.Module], state: dict[str, torch.Tensor]) -> None:
    """Copy saved trainable weights into `modules`; every trainable weight must be there."""
    for prefix, module in modules.items():
        for name, param in module.named_parameters():
            if not param.requires_grad:
                continue
            key = f"{prefix}.{name}"
            if key not in state:
                raise KeyError(f"checkpoint has no weight {key}")
            with torch.no_grad():
                param.copy_(state[key].to(param.dtype))


@dataclass
class Checkpoint:
    """A loaded checkpoint."""

    path: Path
    step: int
    layout_hash: str
    weights: dict[str, torch.Tensor]
    state: dict[str, object]
    meta: dict[str, object]


def save_checkpoint(
    directory: str | Path,
    *,
    step: int,
    layout_hash: str,
    modules: dict[str, nn.Module],
    state: dict[str, object],
    meta: dict[str, object] | None = None,
    keep: int = 3,
) -> Path:
    """Write a checkpoint and make it the latest; keep the newest `keep`."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    name = f"step_{step:07d}"
    final = directory / name
    with staged_directory(final) as staging:
        save_file(
            trainable_state(modules),
            str(staging / "weights.safetensors"),
            metadata={"layout_hash": layout_hash, "step": str(step)},
        )
        torch.save(state, staging / "state.pt")
        info = {
            "step": step,
            "layout_hash": layout_hash,
            "modules": sorted(modules),
            **(meta or {}),
        }
        (staging / "meta.json").write_text(json.dumps(info, indent=1, default=str))
    pointer = directory / f".{LATEST}.{uuid.uuid4().hex[:8]}"
    pointer.write_text(name)
    os.replace(pointer, directory / LATEST)
    for old in sorted(directory.glob("step_*"))[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def latest_checkpoint(directory: str | Path) -> Path | None:
    """The newest complete checkpoint under `directory`, or None."""
    pointer = Path(directory) / LATEST
    if not pointer.is_file():
        return None
    path = Path(directory) / pointer.read_text().strip()
    return path if (path / "meta.json").is_file() else None


def load_checkpoint(path: str | Path, *, expect_layout: str | None = None) -> Checkpoint:
    """Load a checkpoint directory (or the latest under a run directory)."""
    path = Path(path)
    if not (path / "meta.json").is_file():
        found = latest_checkpoint(path)
        if found is None:
            raise FileNotFoundError(f"no checkpoint at {path}")
        path = found
    meta = json.loads((path / "meta.json").read_text())
    if expect_layout is not None and meta["layout_hash"] != expect_layout:
        raise ValueError(
            f"checkpoint {path} was trained on layout {meta['layout_hash']}, "
            f"this model uses layout {expect_layout}"
        )
    return Checkpoint(
        path=path,
        step=int(meta["step"]),
        layout_hash=meta["layout_hash"],
        weights=load_file(str(path / "weights.safetensors")),
        state=torch.load(path / "state.pt", weights_only=False),
        meta=meta,
    )

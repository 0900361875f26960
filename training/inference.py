"""Inference: load a trained world model, ask it about a date or a partial canvas.

    model = WorldModel.load("artifacts/world_model", canvas_dir="artifacts/canvas")
    frame = model.predict_date(warehouse, "2024-06-30", fields=["country_us.macro"])
    latent = model.regime_latent(batch)

For a date, the warehouse supplies exactly what was known then (a point-in-time window
ending at the date's step, normalised with the training statistics); the model predicts
every field at the last step from the steps before it (a nowcast), and predictions come
back in the fields' own units.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import difflib
import fnmatch
import json
import math
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from pathlib import Path

import polars as pl
import torch
from torch import Tensor, nn

from canvas.layout import CanvasLayout
from canvas.materialize import CanvasManifest, materialize_canvas
from canvas.shards import ShardDataset
from training.backbones import build_backbone
from training.checkpoint import load_checkpoint, load_trainable_state
from training.fields import FieldDecoder, FieldEncoder
from training.intervals import ERRORS, interval
from training.predict import forward_canvas
from training.serving import served, world_model_root
from training.settings import ModelSettings
from warehouse.clock import as_timestamp
from warehouse.schema import UnknownFieldError
from warehouse.store import Warehouse


class WorldModel(nn.Module):
    """Encoder, backbone and decoder of a trained run, with its layout and statistics."""

    def __init__(
        self,
        bound: CanvasLayout,
        manifest: CanvasManifest,
        *,
        backbone: str = ModelSettings.backbone,
        backbone_kwargs: Mapping | None = None,
    ) -> None:
        super().__init__()
        self.bound = bound
        self.manifest = manifest
        self.encoder = FieldEncoder(bound)
        self.backbone = build_backbone(backbone, bound, **dict(backbone_kwargs or {}))
        self.decoder = FieldDecoder(bound)
        # normalised validation errors per field (training.intervals): the intervals
        self.errors: dict[str, list[float]] = {}

    @classmethod
    def load(
        cls,
        checkpoint: str | Path | None = None,
        *,
        canvas_dir: str | Path | None = None,
        served_root: str | Path | None = None,
    ) -> WorldModel:
        """A model from a checkpoint (or run directory) and the canvas it was trained on;
        without a checkpoint, the served model (`training.serving`) under `served_root`
        (default: the world_model folder of the default artifacts directory)."""
        if checkpoint is None:
            root = Path(served_root) if served_root else world_model_root()
            record = served(root)
            if record is None:
                raise FileNotFoundError(
                    f"no world model is served from {root} yet: materialize the world_model "
                    "asset (its check serves a run that beats the baselines on validation), "
                    "or pass a run directory and its canvas_dir"
                )
            checkpoint, canvas_dir = record["run"], record["canvas"]
        if canvas_dir is None:
            raise ValueError("canvas_dir is needed with a checkpoint")
        manifest = CanvasManifest.load(canvas_dir)
        bound = CanvasLayout.from_description(manifest.fields, manifest.layout)
        loaded = load_checkpoint(checkpoint, expect_layout=bound.layout_hash())
        # the width is the run's, not the canvas's (it is not part of the layout hash)
        bound = replace(bound, d_model=loaded.meta.get("layout", {}).get("d_model", bound.d_model))
        if loaded.meta.get("objective", "masked") != "masked":
            raise ValueError(
                f"checkpoint {loaded.path} was trained with the {loaded.meta['objective']} "
                "objective; sample from it with DiffusionWorldModelTrainer.sample"
            )
        spec = loaded.meta.get("backbone", {})
        if spec.get("name") not in ("scratch", "cogvideox"):
            raise ValueError(
                f"checkpoint {loaded.path} has a custom backbone; rebuild it "
                "yourself and load the weights with load_trainable_state"
            )
        model = cls(bound, manifest, backbone=spec["name"], backbone_kwargs=spec.get("kwargs"))
        load_trainable_state(model.parts, loaded.weights)
        for folder in (Path(checkpoint), Path(checkpoint).parent):
            if (folder / ERRORS).is_file():
                model.errors = json.loads((folder / ERRORS).read_text())
                break
        return model.eval()

    @property
    def parts(self) -> dict[str, nn.Module]:
        return {"encoder": self.encoder, "backbone": self.backbone, "decoder": self.decoder}

    @torch.no_grad()
    def forward(self, batch: Mapping[str, Tensor]) -> tuple[dict[str, Tensor], Tensor]:
        """(predictions, backbone output tokens) for a batch as given."""
        return forward_canvas(self.encoder, self.backbone, self.decoder, batch)

    @torch.no_grad()
    def nowcast(self, batch: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Predictions with the last step hidden: what the model expects it to be."""
        seen = dict(batch)
        keep = torch.ones_like(batch["presence"])
        keep[:, -1] = 0
        seen["presence"] = batch["presence"] * keep
        seen["values"] = batch["values"] * seen["presence"]
        return self(seen)[0]

    @torch.no_grad()
    def regime_latent(self, batch: Mapping[str, Tensor]) -> Tensor:
        """(B, n_regime_fields * d_model): backbone tokens at the regime fields, last step."""
        _, tokens = self(batch)
        positions = torch.as_tensor(self.bound.latent_positions)
        if not len(positions):
            raise ValueError("the layout has no regime (latent) fields")
        return tokens[:, -1, positions].flatten(1)

    @contextlib.contextmanager
    def _window(
        self,
        warehouse: Warehouse,
        date: dt.date | dt.datetime | str,
        sources: Sequence[str] | None,
    ) -> Iterator[ShardDataset]:
        """A one-window canvas: the window whose last step contains `date`, holding what
        had been released by that moment (not by the end of the step)."""
        end = as_timestamp(date)
        unit = self.bound.step[1:]  # steps are "1d", "1w", "1mo", "1q"
        first = (
            pl.Series([end])
            .dt.truncate(self.bound.step)
            .dt.offset_by(f"-{self.bound.T - 1}{unit}")[0]
        )
        with tempfile.TemporaryDirectory() as tmp:
            materialize_canvas(
                warehouse,
                self.bound,
                Path(tmp) / "w",
                start=first,
                end=end,
                sources=list(sources) if sources else None,
                stats=self.manifest.stats,
                known_by=end,
            )
            window = ShardDataset(Path(tmp) / "w", split=None, layout=self.bound)
            if not window.gather([len(window) - 1], ["presence"])["presence"].any():
                span = warehouse.sql(
                    "SELECT min(observed_at) AS lo, max(observed_at) AS hi FROM observations"
                ).row(0)
                raise ValueError(
                    f"nothing known by {end:%Y-%m-%d} falls in the {self.bound.T} steps of "
                    f"{self.bound.step} up to it: the warehouse's observations span "
                    f"{span[0]:%Y-%m-%d} .. {span[1]:%Y-%m-%d}; pick a date in that range"
                    if span[0]
                    else f"the warehouse at {warehouse.path} holds no observations yet"
                )
            yield window

    def window_at(
        self,
        warehouse: Warehouse,
        date: dt.date | dt.datetime | str,
        *,
        sources: Sequence[str] | None = None,
    ) -> dict[str, Tensor]:
        """The window whose last step contains `date`, with what had been released by
        `date`, as a one-row batch."""
        with self._window(warehouse, date, sources) as window:
            return window.__getitems__([len(window) - 1])

    def predict_date(
        self,
        warehouse: Warehouse,
        date: dt.date | dt.datetime | str,
        fields: Sequence[str] | None = None,
        *,
        sources: Sequence[str] | None = None,
    ) -> pl.DataFrame:
        """Nowcasts of `fields` (paths, prefixes or globs; default all) for the date's step.

        Columns: field_path, unit, prediction, lower_80 and upper_80 (the 80% interval
        from the run's validation errors, where it has them), observed (the value known by
        the date, if any), all in the field's own units: a differenced field's prediction
        is its level, from the latest level known before the step.
        """
        index = self._select(fields)
        with self._window(warehouse, date, sources) as window:
            last = [len(window) - 1]
            batch = window.__getitems__(last)
            nowcast = self.nowcast(batch)["values"]
            offsets = torch.zeros(2, *nowcast.shape[1:])
            for f, path in enumerate(self.bound.paths):
                if path in self.errors:
                    offsets[:, -1, f] = torch.tensor(interval(self.errors[path], 0.8))
            predicted = window.in_field_units(nowcast, last)[0, -1]
            lower, upper = (window.in_field_units(nowcast + o, last)[0, -1] for o in offsets)
            observed = window.in_field_units(batch["values"], last)[0, -1]
        present = batch["presence"][0, -1] > 0
        ranged = {i for i in index if self.bound.paths[i] in self.errors}
        columns = {
            "field_path": [self.bound.paths[i] for i in index],
            "unit": [self.bound.fields[i].unit for i in index],
            "prediction": [_number(predicted[i]) for i in index],
            "lower_80": [_number(lower[i]) if i in ranged else None for i in index],
            "upper_80": [_number(upper[i]) if i in ranged else None for i in index],
            "observed": [_number(observed[i]) if present[i] else None for i in index],
        }
        types = {k: pl.Float64 for k in columns} | {"field_path": pl.Utf8, "unit": pl.Utf8}
        return pl.DataFrame(columns, schema=types)

    def _select(self, patterns: Sequence[str] | None) -> list[int]:
        """The predicted fields that `patterns` (paths, prefixes or globs) name, in layout
        order; a pattern that names none raises UnknownFieldError with the nearest names."""
        scalar = [i for i, f in enumerate(self.bound.fields) if not (f.latent or f.is_vector)]
        if not patterns:
            return scalar
        names = [self.bound.paths[i] for i in scalar]

        def matches(pattern: str) -> set[int]:
            return {
                i
                for i, name in zip(scalar, names, strict=True)
                if name == pattern
                or name.startswith(pattern + ".")
                or fnmatch.fnmatchcase(name, pattern)
            }

        chosen: set[int] = set()
        for pattern in patterns:
            found = matches(pattern)
            if not found:
                prefixes = {n.rsplit(".", k)[0] for n in names for k in (1, 2)}
                close = difflib.get_close_matches(pattern, [*names, *prefixes], n=5, cutoff=0.6)
                raise UnknownFieldError(pattern, sorted(close), is_pattern=True)
            chosen |= found
        return sorted(chosen)


def _number(value: float) -> float | None:
    """A finite float, or None (no earlier level to invert a differenced field from)."""
    return float(value) if math.isfinite(value) else None

"""Canvas layout: a projection of the schema compiled onto a (T, H, W) grid.

Every field owns fixed spatial positions (the same at every time step): one for a
scalar, `vector_slots` for a vector field (its dimensions are split evenly across
them). Fields are placed in path order, so a domain's fields sit together. Spatial
positions past the last field are padding. The layout is deterministic and its hash
stamps every artefact made from it (shards, checkpoints).

This compiled layout is what the seed calls `bound`:

    from canvas import compile_layout
    bound = compile_layout("country_us.macro", "financial", T=12, d_model=64)
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from warehouse.fields import Field
from warehouse.schema import Schema, default_schema

STEPS = {"1d": 1.0, "1w": 7.0, "1mo": 30.44, "1q": 91.31}
D_MODEL = 64  # the default width of a canvas position


@dataclass(frozen=True)
class CanvasLayout:
    """Fields placed on a (T, H, W) canvas of d_model-wide positions."""

    fields: tuple[Field, ...]
    T: int
    H: int
    W: int
    d_model: int
    step: str = "1mo"
    vector_slots: int = 4

    def __post_init__(self) -> None:
        if self.T < 2:
            raise ValueError(f"a canvas needs T >= 2 time steps to show dynamics, got {self.T}")
        if self.step not in STEPS:
            raise ValueError(f"step must be one of {sorted(STEPS)}, got {self.step!r}")
        if self.d_model < 1:
            raise ValueError(f"d_model must be positive, got {self.d_model}")
        if self.n_slots > self.H * self.W:
            raise ValueError(f"{self.n_slots} field positions do not fit on {self.H}x{self.W}")
        paths = [f.path for f in self.fields]
        if len(set(paths)) != len(paths):
            raise ValueError("a layout lists each field once")

    # -- fields ------------------------------------------------------------------------

    @cached_property
    def paths(self) -> list[str]:
        return [f.path for f in self.fields]

    @cached_property
    def index(self) -> dict[str, int]:
        """Field path -> field index (the F axis of every tensor)."""
        return {p: i for i, p in enumerate(self.paths)}

    @property
    def n_fields(self) -> int:
        return len(self.fields)

    @cached_property
    def slots_per_field(self) -> np.ndarray:
        """(F,) number of spatial positions each field owns."""
        return np.array(
            [self.vector_slots if f.is_vector else 1 for f in self.fields], dtype=np.int64
        )

    @property
    def n_slots(self) -> int:
        return int(self.slots_per_field.sum())

    @cached_property
    def slot_field(self) -> np.ndarray:
        """(n_slots,) the field index owning each occupied spatial position."""
        return np.repeat(np.arange(self.n_fields), self.slots_per_field)

    @cached_property
    def slot_offset(self) -> np.ndarray:
        """(F,) first spatial position of each field."""
        return np.concatenate([[0], np.cumsum(self.slots_per_field)[:-1]]).astype(np.int64)

    @cached_property
    def loss_weights(self) -> np.ndarray:
        """(F,) default loss weight per field; 0 for latent fields (they have no targets)."""
        return np.array([0.0 if f.latent else f.loss_weight for f in self.fields], dtype=np.float32)

    @cached_property
    def latent_mask(self) -> np.ndarray:
        return np.array([f.latent for f in self.fields], dtype=bool)

    @cached_property
    def vector_fields(self) -> list[int]:
        return [i for i, f in enumerate(self.fields) if f.is_vector]

    @cached_property
    def period_days(self) -> np.ndarray:
        """(F,) typical period of each field in days (slow fields move less)."""
        return np.array([f.period.days for f in self.fields], dtype=np.float32)

    @property
    def n_positions(self) -> int:
        return self.T * self.H * self.W

    @cached_property
    def latent_positions(self) -> np.ndarray:
        """Spatial positions of the latent (regime) fields; empty when there are none."""
        latent = [self.positions(self.paths[f]) for f in np.flatnonzero(self.latent_mask)]
        return np.concatenate(latent) if latent else np.zeros(0, dtype=np.int64)

    def positions(self, path: str) -> np.ndarray:
        """Spatial positions (indices into H*W) owned by a field."""
        i = self.index[path]
        return np.arange(self.slot_offset[i], self.slot_offset[i] + self.slots_per_field[i])

    def expand(self, per_field: np.ndarray) -> np.ndarray:
        """(..., F) per-field array -> (..., H*W) per-position array (padding gets 0)."""
        out = np.zeros((*per_field.shape[:-1], self.H * self.W), dtype=per_field.dtype)
        out[..., : self.n_slots] = per_field[..., self.slot_field]
        return out

    # -- identity ----------------------------------------------------------------------

    def layout_hash(self) -> str:
        """sha256 over the ordered fields, grid and step: what decides the canvas data.

        The width `d_model` is left out: it is the model's, and a canvas materialized at
        one width serves a model of any width."""
        spec = {
            "fields": [
                [f.path, f.unit, f.period.value, f.dimension, f.latent, f.transform.value]
                for f in self.fields
            ],
            "grid": [self.T, self.H, self.W],
            "step": self.step,
            "vector_slots": self.vector_slots,
        }
        return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]

    def describe(self) -> dict[str, object]:
        """Plain facts for manifests and metadata."""
        return {
            "layout_hash": self.layout_hash(),
            "fields": self.n_fields,
            "grid": [self.T, self.H, self.W],
            "d_model": self.d_model,
            "step": self.step,
            "positions": self.n_positions,
            "occupied_per_step": self.n_slots,
            "vector_slots": self.vector_slots,
        }

    @classmethod
    def from_description(
        cls, paths: list[str], description: dict, schema: Schema | None = None
    ) -> CanvasLayout:
        """Rebuild a layout from its field paths and `describe()` output."""
        schema = schema or default_schema()
        T, H, W = description["grid"]
        return cls(
            tuple(schema.field(p) for p in paths),
            T=T,
            H=H,
            W=W,
            d_model=description["d_model"],
            step=description["step"],
            vector_slots=description["vector_slots"],
        )

    def render_png(self, path: str | Path, *, title: str | None = None) -> Path:
        """One time step of the canvas as a PNG, positions coloured by field group."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.colors import ListedColormap

        groups = [f.path.rsplit(".", 1)[0] for f in self.fields]
        names = sorted(set(groups))
        palette = [
            *plt.get_cmap("tab20").colors,
            *plt.get_cmap("tab20b").colors,
            *plt.get_cmap("tab20c").colors,
        ]
        colours = [palette[i % len(palette)] for i in range(len(names))]
        code = np.full(self.H * self.W, np.nan)
        code[: self.n_slots] = [names.index(groups[i]) for i in self.slot_field]
        fig, ax = plt.subplots(figsize=(self.W * 0.32 + 4.5, self.H * 0.32 + 1.2))
        ax.imshow(
            code.reshape(self.H, self.W),
            cmap=ListedColormap(colours),
            vmin=-0.5,
            vmax=len(names) - 0.5,
            interpolation="nearest",
        )
        ax.set_xticks(np.arange(-0.5, self.W, 1), minor=True)
        ax.set_yticks(np.arange(-0.5, self.H, 1), minor=True)
        ax.grid(which="minor", color="white", linewidth=0.6)
        ax.tick_params(which="both", length=0, labelbottom=False, labelleft=False)
        for i, name in enumerate(names):
            ax.plot([], [], "s", color=colours[i], label=f"{name} ({groups.count(name)})")
        ax.legend(
            loc="upper left",
            bbox_to_anchor=(1.01, 1),
            fontsize=7,
            frameon=False,
            ncol=1 if len(names) <= 30 else 2,
        )
        ax.set_title(
            title
            or f"canvas T={self.T} x {self.H} x {self.W}, {self.n_fields} "
            f"fields, layout {self.layout_hash()}",
            fontsize=9,
        )
        path = Path(path)
        fig.savefig(path, dpi=110, bbox_inches="tight")
        plt.close(fig)
        return path


def compile_layout(
    *patterns: str,
    schema: Schema | None = None,
    T: int = 12,
    d_model: int = D_MODEL,
    step: str = "1mo",
    vector_slots: int = 4,
    include_latent: bool = True,
    width: int | None = None,
) -> CanvasLayout:
    """Compile a projection of the schema (all of it when no pattern is given).

    `patterns` are prefixes or globs as in `Schema.project`. Regime (latent) fields are
    added unless `include_latent=False`: they get positions but never targets. The grid
    is the smallest near-square H x W that holds every field position (`width` fixes W).
    """
    schema = schema or default_schema()
    projected = schema.project(*patterns) if patterns else schema
    fields = list(projected)
    if include_latent:
        have = {f.path for f in fields}
        fields += [f for f in schema if f.latent and f.path not in have]
    fields.sort(key=lambda f: f.path)
    if not fields:
        raise ValueError("the projection selects no field")
    n_slots = sum(vector_slots if f.is_vector else 1 for f in fields)
    W = width or math.ceil(math.sqrt(n_slots))
    H = math.ceil(n_slots / W)
    return CanvasLayout(
        tuple(fields), T=T, H=H, W=W, d_model=d_model, step=step, vector_slots=vector_slots
    )

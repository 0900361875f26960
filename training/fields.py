"""FieldEncoder / FieldDecoder: per-field linear maps between field values and canvas tokens.

A batch (values, presence and vectors per field, see `canvas`) becomes canvas tokens
(B, T, H*W, d_model): each field writes its own spatial positions of the layout, the
same at every time step. The token of a field's position at time t is

    presence * (value * w_f + p_f) + (1 - presence) * a_f + S @ e_f + tau_t

* ``w_f``: per-field value map (scalars); a vector field instead splits its D dims
  evenly over its `vector_slots` positions and maps each chunk with its own
  (field, slot) matrix;
* ``p_f`` / ``a_f``: per-position present / absent embeddings, so the model tells an
  absent value from a present zero. (A separate bias b_f would be redundant: it is
  absorbed by p_f and a_f.) For vector fields they are per slot, which also tells the
  slots of one field apart; no global per-grid-position embedding is learned, as grid
  positions move when the canvas grows while field paths do not;
* ``e_f``: the frozen semantic embedding of the field (a buffer) and ``S`` one shared
  trainable Linear(384 -> d_model): the field's identity for the backbone;
* ``tau_t``: a learned temporal embedding.

Padding positions (past the layout's occupied slots) are zero tokens.

The decoder reads each field back from its own positions: a per-field linear map
d_model -> 1 for scalars, and per (field, slot) maps d_model -> D / slots for vectors,
concatenated over the slots. Everything is batched over fields (einsum / broadcast).

`load_fields_from(*others)` sets the per-field parameters of every field the others
hold (by path) to their mean (a copy for one), which is how a curriculum carries
weights onto a growing canvas and joins branches.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from canvas.layout import CanvasLayout
from training.semantic import semantic_embeddings

__all__ = ["FieldDecoder", "FieldEncoder", "FieldTransfer", "random_batch"]


def random_batch(
    layout: CanvasLayout, batch_size: int, *, seed: int = 0, presence: float = 0.8
) -> dict[str, Tensor]:
    """A batch of random data in the format the encoder reads, for tests and benchmarks.

    Each (sample, step, field) is present with probability `presence`; values are
    standard normal where present, zero elsewhere; `target_weight` is presence times the
    layout's loss weights; `vectors` (only when the layout has vector fields) is
    standard normal.
    """
    g = torch.Generator().manual_seed(seed)
    shape = (batch_size, layout.T, layout.n_fields)
    present = (torch.rand(shape, generator=g) < presence).float()
    out = {
        "values": torch.randn(shape, generator=g) * present,
        "presence": present,
        "target_weight": present * torch.as_tensor(layout.loss_weights),
    }
    if layout.vector_fields:
        dim = max(layout.fields[i].dimension for i in layout.vector_fields)
        shape = (batch_size, layout.T, len(layout.vector_fields), dim)
        out["vectors"] = torch.randn(shape, generator=g)
    return out


class FieldTransfer(NamedTuple):
    """Outcome of `load_fields_from`: field paths copied and left at initialisation."""

    copied: list[str]
    initialised: list[str]


class _FieldModule(nn.Module):
    """Layout bookkeeping shared by encoder and decoder: which rows belong to a field.

    `_per_field` maps each per-field parameter to the axis kind its first dimension runs
    over ("scalar": scalar fields, "slot": occupied positions, "vector": vector fields)
    and, for vector parameters, the axis of the within-slot chunk.
    """

    _per_field: dict[str, tuple[str, int | None]] = {}

    def __init__(self, bound: CanvasLayout, d_model: int | None) -> None:
        super().__init__()
        self.bound = bound
        self.d_model = d_model or bound.d_model
        fields = bound.fields
        scalar = np.array([i for i, f in enumerate(fields) if not f.is_vector], dtype=np.int64)
        vector = np.array(bound.vector_fields, dtype=np.int64)
        self.slots = bound.vector_slots
        self.vector_dim = max((fields[i].dimension for i in vector), default=0)
        self.chunk = max((math.ceil(fields[i].dimension / self.slots) for i in vector), default=0)
        self._scalar_row = {fields[i].path: r for r, i in enumerate(scalar)}
        self._vector_row = {fields[i].path: r for r, i in enumerate(vector)}
        vector_positions = np.concatenate(
            [bound.positions(fields[i].path) for i in vector] or [np.zeros(0, np.int64)]
        )
        self._index("slot_field", bound.slot_field)
        self._index("first_position", bound.slot_offset)
        self._index("scalar_fields", scalar)
        self._index("scalar_positions", bound.slot_offset[scalar])
        self._index("vector_fields", vector)
        self._index("vector_positions", vector_positions)
        gather, scatter = self._vector_indices([fields[i].dimension for i in vector])
        self._index("vector_gather", gather)
        self._index("vector_scatter", scatter)

    def _index(self, name: str, array: np.ndarray) -> None:
        """A layout-derived index tensor: moves with the module, not saved in state_dict."""
        self.register_buffer(name, torch.as_tensor(array, dtype=torch.long), persistent=False)

    def _vector_indices(self, dims: list[int]) -> tuple[np.ndarray, np.ndarray]:
        """Split each vector field's dims evenly over its slots.

        gather (V, slots * chunk): index into a vector padded with one zero at D (for
        chunk entries past the field's own chunk); scatter (V, D): index into the flat
        (slots * chunk) decoder output padded with one zero (for dims past the field's).
        """
        width = self.slots * self.chunk
        gather = np.full((len(dims), width), self.vector_dim, dtype=np.int64)
        scatter = np.full((len(dims), self.vector_dim), width, dtype=np.int64)
        for v, dim in enumerate(dims):
            own = math.ceil(dim / self.slots)
            d = np.arange(dim)
            flat = (d // own) * self.chunk + d % own
            gather[v, flat] = d
            scatter[v, :dim] = flat
        return gather, scatter

    def _to_grid(self, per_slot: Tensor, dim: int) -> Tensor:
        """Pad axis `dim` (negative) from the occupied slots to all H*W positions with 0."""
        pad = self.bound.H * self.bound.W - self.bound.n_slots
        return F.pad(per_slot, (0, 0) * (-dim - 1) + (0, pad))

    def _scalar_to_grid(self, per_scalar: Tensor, dim: int) -> Tensor:
        """Place axis `dim` (negative; one entry per scalar field) at the scalar fields'
        positions of an H*W axis; other positions are 0."""
        shape = list(per_scalar.shape)
        shape[dim] = self.bound.H * self.bound.W
        return per_scalar.new_zeros(shape).index_copy(
            per_scalar.ndim + dim, self.scalar_positions, per_scalar
        )

    @property
    def field_paths(self) -> list[str]:
        """Field paths in F order (the layout's)."""
        return list(self.bound.paths)

    def _rows(self, kind: str, chunk_axis: int | None, path: str) -> tuple[object, ...] | None:
        """Index into a per-field parameter selecting `path`'s entries (None: not its kind)."""
        i = self.bound.index[path]
        if kind == "slot":
            start = int(self.bound.slot_offset[i])
            return (slice(start, start + int(self.bound.slots_per_field[i])),)
        if kind == "scalar":
            return (self._scalar_row[path],) if path in self._scalar_row else None
        if path not in self._vector_row:
            return None
        own = math.ceil(self.bound.fields[i].dimension / self.slots)
        rest = [slice(None)] * (chunk_axis - 1) if chunk_axis else []
        return (self._vector_row[path], *rest, slice(0, own))

    def _shares(self, other: _FieldModule, path: str) -> bool:
        """True when `other` holds `path` with the same shape (dimension and slots)."""
        j = other.bound.index.get(path)
        if j is None:
            return False
        i = self.bound.index[path]
        return (
            other.bound.fields[j].dimension == self.bound.fields[i].dimension
            and other.bound.slots_per_field[j] == self.bound.slots_per_field[i]
        )

    @torch.no_grad()
    def load_fields_from(self, *others: _FieldModule) -> FieldTransfer:
        """Set each field's parameters to the mean over the `others` that hold it.

        One module copies; several (a curriculum join) are averaged element-wise per
        field, over just the modules that have the field. Fields none of them holds keep
        their initialisation and are listed as `initialised`.
        """
        if not others:
            raise ValueError("load_fields_from needs at least one module")
        for other in others:
            if type(other) is not type(self):
                raise TypeError(f"cannot load {type(self).__name__} from {type(other).__name__}")
            if other.d_model != self.d_model:
                raise ValueError(f"d_model differs: {other.d_model} vs {self.d_model}")
        copied, initialised = [], []
        for path in self.field_paths:
            holders = [other for other in others if self._shares(other, path)]
            if not holders:
                initialised.append(path)
                continue
            for name, (kind, chunk_axis) in self._per_field.items():
                rows = self._rows(kind, chunk_axis, path)
                if rows is not None:
                    getattr(self, name)[rows] = torch.stack(
                        [getattr(o, name)[o._rows(kind, chunk_axis, path)] for o in holders]
                    ).mean(0)
            copied.append(path)
        return FieldTransfer(copied, initialised)


def _normal(*shape: int, std: float) -> nn.Parameter:
    return nn.Parameter(torch.randn(*shape) * std)


class FieldEncoder(_FieldModule):
    """Batch dict -> canvas tokens (B, T, H*W, d_model); see the module docstring."""

    _per_field = {
        "value_weight": ("scalar", None),
        "present": ("slot", None),
        "absent": ("slot", None),
        "vector_weight": ("vector", 2),
    }

    def __init__(
        self,
        bound: CanvasLayout,
        d_model: int | None = None,
        semantic: np.ndarray | Tensor | None = None,
    ) -> None:
        super().__init__(bound, d_model)
        if semantic is None:
            semantic = semantic_embeddings(bound)
        semantic = torch.tensor(np.asarray(semantic), dtype=torch.float32)  # a copy
        if semantic.ndim != 2 or semantic.shape[0] != bound.n_fields:
            raise ValueError(f"semantic must be ({bound.n_fields}, E), got {tuple(semantic.shape)}")
        d = self.d_model
        std = d**-0.5  # each component of a token starts with about unit norm
        self.register_buffer("semantic", semantic)
        self.semantic_proj = nn.Linear(semantic.shape[1], d)
        nn.init.normal_(self.semantic_proj.weight, std=std)  # unit-norm e_f -> ~unit norm
        nn.init.zeros_(self.semantic_proj.bias)
        self.temporal = _normal(bound.T, d, std=std)
        self.value_weight = _normal(len(self.scalar_fields), d, std=std)
        self.present = _normal(bound.n_slots, d, std=std)
        self.absent = _normal(bound.n_slots, d, std=std)
        n_vec = len(bound.vector_fields)
        # a unit-norm vector's chunk has norm ~ slots**-0.5: scale so its token is ~unit norm
        self.vector_weight = (
            _normal(n_vec, self.slots, self.chunk, d, std=std * self.slots**0.5) if n_vec else None
        )

    def identity(self) -> Tensor:
        """(T, n_slots, d_model): semantic identity of each position plus its time step."""
        per_field = self.semantic_proj(self.semantic)
        return per_field[self.slot_field] + self.temporal[:, None]

    def forward(self, batch: Mapping[str, Tensor]) -> Tensor:
        """Tokens (B, T, H*W, d_model) of a batch with values, presence (and vectors)."""
        values, presence = batch["values"], batch["presence"]
        expected = (self.bound.T, self.bound.n_fields)
        if tuple(values.shape[1:]) != expected or presence.shape != values.shape:
            raise ValueError(
                f"values/presence must be (B, {expected[0]}, {expected[1]}), got "
                f"{tuple(values.shape)} / {tuple(presence.shape)}"
            )
        # Per-position features (value, presence) and weights, padding rows zero: one
        # batched matmul over positions (cheaper backward than broadcast multiplies).
        features = torch.stack(
            [
                self._scalar_to_grid((values * presence)[..., self.scalar_fields], -1),
                self._to_grid(presence[..., self.slot_field], -1),
            ],
            dim=-1,
        )
        weights = torch.stack(
            [
                self._scalar_to_grid(self.value_weight, -2),
                self._to_grid(self.present - self.absent, -2),
            ],
            dim=1,
        )
        base = self._to_grid(self.identity() + self.absent, -2)
        tokens = torch.einsum("btnk,nkd->btnd", features, weights) + base
        if self.vector_weight is not None:
            vector = self._vector_tokens(batch).to(tokens.dtype)  # may differ under autocast
            tokens.index_add_(2, self.vector_positions, vector)
        return tokens

    @torch.no_grad()
    def load_fields_from(self, *others: _FieldModule) -> FieldTransfer:
        """Average the shared fields' parameters (see the base class), plus the semantic
        projection and the temporal embedding over the `others` that have them (time
        steps aligned on the latest step, when the step size matches)."""
        transfer = super().load_fields_from(*others)
        same_semantic = [o for o in others if o.semantic.shape[1] == self.semantic.shape[1]]
        for name in ("weight", "bias"):
            if same_semantic:
                getattr(self.semantic_proj, name).copy_(
                    torch.stack([getattr(o.semantic_proj, name) for o in same_semantic]).mean(0)
                )
        same_step = [o for o in others if o.bound.step == self.bound.step]
        if same_step:
            n = min(self.bound.T, *(o.bound.T for o in same_step))
            self.temporal[-n:] = torch.stack([o.temporal[-n:] for o in same_step]).mean(0)
        return transfer

    def _vector_tokens(self, batch: Mapping[str, Tensor]) -> Tensor:
        """(B, T, V * slots, d_model) value part of the vector fields' tokens."""
        if "vectors" not in batch:
            raise KeyError(
                "the layout has vector fields "
                f"{[self.bound.paths[i] for i in self.bound.vector_fields]}: "
                "the batch needs 'vectors' (B, T, V, D)"
            )
        expected = (len(self.bound.vector_fields), self.vector_dim)
        if tuple(batch["vectors"].shape[2:]) != expected:
            raise ValueError(
                f"vectors must be (B, T, {expected[0]}, {expected[1]}), "
                f"got {tuple(batch['vectors'].shape)}"
            )
        vectors = batch["vectors"] * batch["presence"][..., self.vector_fields, None]
        chunks = torch.take_along_dim(F.pad(vectors, (0, 1)), self.vector_gather[None, None], dim=3)
        chunks = chunks.unflatten(3, (self.slots, self.chunk))
        return torch.einsum("btvsc,vscd->btvsd", chunks, self.vector_weight).flatten(2, 3)


class FieldDecoder(_FieldModule):
    """Canvas tokens (B, T, H*W, d_model) -> {"values": (B, T, F), "vectors": (B, T, V, D)}.

    `persistence()` weighs each field's latest visible value, which `training.predict`
    adds to the decoded residual (a learned AR(1)-like carry-over per field).

    Scalar fields are read from their position by a per-field linear map; vector fields
    concatenate per-(field, slot) linear maps over their slots. "values" is 0 for vector
    fields; "vectors" is present only when the layout has vector fields.
    """

    _per_field = {
        "value_weight": ("scalar", None),
        "value_bias": ("scalar", None),
        "value_persistence": ("scalar", None),
        "vector_weight": ("vector", 3),
        "vector_bias": ("vector", 2),
    }

    def __init__(self, bound: CanvasLayout, d_model: int | None = None) -> None:
        super().__init__(bound, d_model)
        d = self.d_model
        self.value_weight = _normal(len(self.scalar_fields), d, std=d**-0.5)
        self.value_bias = nn.Parameter(torch.zeros(len(self.scalar_fields)))
        # how much of a field's latest visible value carries into a prediction: a level
        # (a rate of change, a spread) starts as persistent, a change as unpredictable
        levels = [float(bound.fields[i].transform == "level") for i in self.scalar_fields]
        self.value_persistence = nn.Parameter(torch.tensor(levels))
        n_vec = len(bound.vector_fields)
        if n_vec:
            self.vector_weight = _normal(n_vec, self.slots, d, self.chunk, std=d**-0.5)
            self.vector_bias = nn.Parameter(torch.zeros(n_vec, self.slots, self.chunk))
        else:
            self.vector_weight = self.vector_bias = None

    @torch.no_grad()
    def start_as_ar1(self, coefficients: np.ndarray, fitted: np.ndarray) -> None:
        """Predict as a per-field AR(1) at first (rho_f ** h x the latest visible value):
        the carry-over weights take the fitted (F,) coefficients, clipped to [-1, 1]
        (fields not `fitted` keep theirs), and the residual read-out starts at zero, so
        training moves away from AR(1) only where that helps."""
        rho = self.persistence().cpu().numpy()
        rho = np.clip(np.where(fitted, coefficients, rho), -1.0, 1.0)
        scalar = self.scalar_fields.cpu().numpy()
        self.value_persistence.copy_(torch.as_tensor(rho[scalar], dtype=torch.float32))
        self.value_weight.zero_()
        self.value_bias.zero_()

    def persistence(self) -> Tensor:
        """(F,) weight of each field's latest visible value in its prediction (0: vectors)."""
        out = self.value_persistence.new_zeros(self.bound.n_fields)
        return out.index_copy(0, self.scalar_fields, self.value_persistence)

    def forward(self, tokens: Tensor) -> dict[str, Tensor]:
        """Predictions from canvas tokens."""
        expected = (self.bound.T, self.bound.H * self.bound.W, self.d_model)
        if tuple(tokens.shape[1:]) != expected:
            raise ValueError(f"tokens must be (B, {expected}), got {tuple(tokens.shape)}")
        weight = self._scalar_to_grid(self.value_weight, -2)
        bias = self._scalar_to_grid(self.value_bias, -1)
        per_position = torch.linalg.vecdot(tokens, weight) + bias  # 0 off scalar positions
        out = {"values": per_position[..., self.first_position]}
        if self.vector_weight is not None:
            slots = tokens[:, :, self.vector_positions].unflatten(2, (-1, self.slots))
            chunks = torch.einsum("btvsd,vsdc->btvsc", slots, self.vector_weight)
            flat = F.pad((chunks + self.vector_bias).flatten(3), (0, 1))  # last index: zero
            out["vectors"] = torch.take_along_dim(flat, self.vector_scatter[None, None], dim=3)
        return out

"""Materialized canvas shards (see :mod:`canvas.materialize`) as a torch Dataset.

    loader = build_shard_dataloader("canvas/", bound, split="train", batch_size=32)

Every shard's arrays are opened with ``np.load(mmap_mode="r")``: nothing is read until a
batch is gathered. A global window index maps to (shard, local index); ``__getitems__``
gathers a whole batch by fancy indexing per shard into one contiguous array and returns
the batch contract of :mod:`canvas.dataset` (values, presence, target_weight,
presence_mask, [vectors,] window_end), with ``target_weight = presence x
layout.loss_weights``. Pickling (DataLoader workers under spawn) sends the directory, not
the data; every worker maps the files again.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, TypeVar

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from canvas.dataset import Batch, Split, collate_batch
from canvas.layout import CanvasLayout
from canvas.materialize import CanvasManifest
from canvas.stationary import differenced, to_field_units, transform_codes

ArrayT = TypeVar("ArrayT", np.ndarray, torch.Tensor)


class LayoutMismatchError(ValueError):
    """The shards were materialized for a different layout than the model's."""


class _Normalised(Protocol):
    @property
    def mean(self) -> np.ndarray: ...

    @property
    def std(self) -> np.ndarray: ...


class ShardDataset(Dataset):
    """Windows of one split (``None``: all) of a materialized canvas directory.

    With `layout`, the manifest's layout hash must match ``layout.layout_hash()``.
    Without it, the layout is rebuilt from the manifest's fields (default schema) on
    compile_layout's default grid (near-square, 4 vector slots), unchecked.

    A canvas with several cutoffs per step (`CanvasManifest.cutoffs_per_step`) holds
    windows cut inside each step too; by default the dataset is the windows cut at each
    step's end, one per step, in step order. `every_cutoff=True` gives every window (more,
    overlapping training windows, each with the ragged edge of its own moment).
    """

    def __init__(
        self,
        directory: str | Path,
        split: Split | None = "train",
        layout: CanvasLayout | None = None,
        *,
        every_cutoff: bool = False,
    ) -> None:
        self.directory = Path(directory)
        self.manifest = CanvasManifest.load(self.directory)
        if layout is not None and layout.layout_hash() != self.manifest.layout_hash:
            raise LayoutMismatchError(
                f"shards at {self.directory} were made with layout {self.manifest.layout_hash}, "
                f"model expects {layout.layout_hash()}; materialize the canvas again with the "
                "model's layout"
            )
        if split is not None and split not in self.manifest.splits:
            raise ValueError(f"split must be one of {sorted(self.manifest.splits)} or None")
        self.layout = layout or _rebuild_layout(self.manifest)
        self.split = split
        first, end = self.manifest.splits[split] if split else (0, self.manifest.n_windows)
        per_step = 1 if every_cutoff else self.manifest.cutoffs_per_step
        # global window numbers: every window, or those at a step's end (n % k == k - 1)
        self._index = np.arange(first + (-first - 1) % per_step, end, per_step, dtype=np.int64)
        self._loss_weights = self.layout.loss_weights
        self._open()

    def _open(self) -> None:
        """Memory-map every shard and the window end dates."""
        self._starts = np.array([s["first"] for s in self.manifest.shards], dtype=np.int64)
        self._arrays: list[dict[str, np.ndarray]] = []
        for shard in self.manifest.shards:
            d = self.directory / str(shard["dir"])
            names = ["values", "presence"] + (["vectors"] if self.manifest.vector_fields else [])
            names += ["levels"] if self.manifest.level_fields else []
            self._arrays.append({n: np.load(d / f"{n}.npy", mmap_mode="r") for n in names})
        ends = np.load(self.directory / "window_end.npy", mmap_mode="r")
        self._window_days = np.asarray(ends).astype("datetime64[D]").astype(np.int64)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        for name in ("_arrays", "_starts", "_window_days"):
            del state[name]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._open()

    @property
    def mean(self) -> np.ndarray:
        """(F,) normalisation means (the manifest's)."""
        return self.manifest.mean

    @property
    def std(self) -> np.ndarray:
        """(F,) normalisation standard deviations (the manifest's)."""
        return self.manifest.std

    @property
    def window_days(self) -> np.ndarray:
        """(n,) int64 day (since 1970-01-01) of each window's last step, in window order."""
        return self._window_days[self._index]

    def __len__(self) -> int:
        return len(self._index)

    def gather(
        self, indices: Sequence[int] | np.ndarray, names: Sequence[str] | None = None
    ) -> dict[str, np.ndarray]:
        """The raw stored arrays (or those `names`) of split-local windows `indices`, as
        contiguous copies."""
        idx = np.asarray(indices, dtype=np.int64)
        if idx.size and (idx.min() < -len(self) or idx.max() >= len(self)):
            raise IndexError(f"window index out of range for {len(self)} windows")
        glob = self._index[idx]
        shard = np.searchsorted(self._starts, glob, side="right") - 1
        local = glob - self._starts[shard]
        names = list(names or self._arrays[0])
        out = {
            name: np.empty(
                (len(idx), *self._arrays[0][name].shape[1:]), self._arrays[0][name].dtype
            )
            for name in names
        }
        for s in np.unique(shard):
            rows = np.flatnonzero(shard == s)
            for name in names:
                out[name][rows] = self._arrays[s][name][local[rows]]
        out["window_end"] = self._window_days[glob]
        return out

    def in_field_units(self, values: ArrayT, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        """Normalised values (n, T, F) of windows `indices` in the fields' own units (float64):
        de-normalised, then each transform inverted (a differenced field from the latest
        earlier level of its window)."""
        t = denormalise(np.asarray(values, dtype=np.float64), self)
        codes = transform_codes(self.layout.fields)
        level_fields = differenced(codes)
        levels = (
            self.gather(indices, ["levels"])["levels"].astype(np.float64)
            if len(level_fields)
            else np.zeros((*t.shape[:2], 0))
        )
        return to_field_units(t, levels, codes, level_fields)

    def __getitems__(self, indices: Sequence[int]) -> Batch:
        """A collated batch (the contract of :mod:`canvas.dataset`)."""
        raw = self.gather(indices)
        presence = raw["presence"].astype(np.float32)
        batch = {
            "values": torch.from_numpy(raw["values"]),
            "presence": torch.from_numpy(presence),
            "target_weight": torch.from_numpy(presence * self._loss_weights),
            "presence_mask": torch.from_numpy(self.layout.expand(presence)),
            "window_end": torch.from_numpy(raw["window_end"]),
        }
        if "vectors" in raw:
            batch["vectors"] = torch.from_numpy(raw["vectors"].astype(np.float32))
        return batch

    def __getitem__(self, index: int) -> Batch:
        """One window: the batch contract without the batch dimension."""
        return {k: v[0] for k, v in self.__getitems__([index]).items()}


def build_shard_dataloader(
    directory: str | Path,
    layout: CanvasLayout,
    split: Split | None = "train",
    batch_size: int = 32,
    shuffle: bool = True,
    num_workers: int = 0,
    *,
    drop_last: bool = False,
    generator: torch.Generator | None = None,
    every_cutoff: bool = False,
) -> DataLoader:
    """A DataLoader over one split of materialized shards, checked against `layout`
    (`every_cutoff`: see `ShardDataset`)."""
    return DataLoader(
        ShardDataset(directory, split=split, layout=layout, every_cutoff=every_cutoff),
        batch_size=batch_size,
        shuffle=shuffle,
        num_workers=num_workers,
        drop_last=drop_last,
        collate_fn=collate_batch,
        generator=generator,
    )


def denormalise(values: ArrayT, manifest: CanvasManifest | _Normalised) -> ArrayT:
    """Normalised values (..., F) back in the fields' modelled units: values x std + mean.

    These are the units of each field's transform (a change for a differenced field, a
    logarithm for a logged one); `ShardDataset.in_field_units` inverts them to the
    fields' own units. `manifest` is a CanvasManifest or anything with (F,) `mean` and
    `std` (a ShardDataset or HeterogeneousDataset). Absent positions come back as the mean.
    """
    mean, std = np.asarray(manifest.mean), np.asarray(manifest.std)
    if isinstance(values, torch.Tensor):
        mean_t = torch.as_tensor(mean, dtype=values.dtype, device=values.device)
        std_t = torch.as_tensor(std, dtype=values.dtype, device=values.device)
        return values * std_t + mean_t
    return values * std + mean


def _rebuild_layout(manifest: CanvasManifest) -> CanvasLayout:
    """The layout the shards were made with, rebuilt from the manifest and checked."""
    layout = CanvasLayout.from_description(manifest.fields, manifest.layout)
    if layout.layout_hash() != manifest.layout_hash:
        raise LayoutMismatchError(
            f"the manifest's layout rebuilds to {layout.layout_hash()}, not "
            f"{manifest.layout_hash}: the schema changed since; pass the model's layout"
        )
    return layout

"""Compute estimates for a curriculum: FLOPs per training step from the backbone config.

    estimate = estimate_compute(standard_dag(), CurriculumSettings(backbone="cogvideox"))
    print(estimate.tier_table())         # the seed's table: per tier, with the totals
    print(estimate.to_markdown())        # one row per node
    estimate.node_metadata("surveys")    # plain values for the node's Dagster asset

FLOPs are counted analytically from the layout and the backbone config, for one training
step (forward + backward) of `settings.batch_size` samples; the masked and the diffusion
objectives both run encoder, backbone and decoder once per step:

* Only matmul-like work counts: every linear map, convolution or einsum costs 2 * in * out
  per row it is applied to; attention costs 4 * L^2 * width per attended sequence (the
  scores Q K^T and the values A V; factorized attention: sequences of the n_slots
  positions of each step, then of the T steps of each position). Elementwise work
  (norms, activations, softmax, loss, optimiser) is left out, as in the 6 * N * D rule
  and in torch's `FlopCounterMode`.
* Backward costs one forward per gradient it computes: the input's (when anything
  upstream trains) and the weight's (when the layer trains). So backward = 2x forward for
  trainable layers (scratch backbone, graft projections and adapters, decoder), 1x for
  the FROZEN CogVideoX layers (activation gradients only, no weight gradients), 1x for
  the encoder's maps of data (weight gradients only) and 0 for the frozen maps of the
  diffusion time. Attention products have no weights but need both operands'
  gradients: their backward is 2x forward, frozen or not.
* GPU-hours = steps * FLOPs per step / (peak FLOP/s * utilisation); every FLOP is priced
  at the dense bf16 peak (the graft's small float32 projections included).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from canvas.layout import CanvasLayout
from training.backbones.base import TIME_FREQUENCIES
from training.dag import DAGNode, tiers, validate_dag
from training.settings import CurriculumSettings, node_layout
from warehouse.schema import Schema, default_schema

__all__ = [
    "BF16_DENSE_PEAKS",
    "H100_BF16_DENSE_FLOPS",
    "ComputeEstimate",
    "StepFlops",
    "bf16_peak_flops",
    "cogvideox_config",
    "estimate_compute",
    "step_flops",
]

# NVIDIA H100 Tensor Core GPU datasheet, H100 SXM: 1,979 TFLOPS bf16 "with sparsity",
# i.e. 989 TFLOPS dense.
H100_BF16_DENSE_FLOPS = 989e12
# Dense bf16 peaks by device name (torch.cuda.get_device_name), first match wins; the
# datasheets give bf16 "with sparsity", half of it is dense. NVIDIA H100 Tensor Core GPU
# datasheet: SXM 1,979, NVL 1,671, PCIe 1,513 TFLOPS; NVIDIA H200 Tensor Core GPU
# datasheet: SXM 1,979, NVL 1,671; NVIDIA A100 Tensor Core GPU datasheet: 624 (312 dense).
BF16_DENSE_PEAKS: tuple[tuple[str, float], ...] = (
    ("H100 PCIe", 756e12),
    ("H100 NVL", 835e12),
    ("H200 NVL", 835e12),
    ("H100", H100_BF16_DENSE_FLOPS),
    ("H200", 989e12),
    ("A100", 312e12),
)
SEMANTIC_DIM = 384  # all-MiniLM-L6-v2 field embeddings (training.semantic)
SCRATCH_MLP_RATIO = 4  # ScratchBackbone defaults
FF_MULT = 4  # diffusers FeedForward: inner dim = 4 * dim in every CogVideoX block


class StepFlops(NamedTuple):
    """FLOPs of one training step (forward, backward) and the backbone's tokens per sample."""

    forward: int
    backward: int
    sequence: int

    @property
    def total(self) -> int:
        return self.forward + self.backward


@dataclass
class _Tally:
    """Forward and backward FLOPs of the matmul-like ops of one step."""

    forward: int = 0
    backward: int = 0

    def linear(self, rows: int, n_in: int, n_out: int, grads: int) -> None:
        """`rows` applications of an n_in -> n_out map; `grads` gradients in its backward."""
        self.add(2 * rows * n_in * n_out, grads)

    def attention(self, sequences: int, length: int, width: int) -> None:
        """Scores and values of self-attention over `sequences` sequences of `length`."""
        self.add(4 * sequences * length**2 * width, 2)

    def add(self, flops: int, grads: int) -> None:
        self.forward += flops
        self.backward += grads * flops


def step_flops(
    layout: CanvasLayout,
    settings: CurriculumSettings,
    *,
    n_layers: int | None = None,
    transformer_config: Mapping[str, Any] | None = None,
) -> StepFlops:
    """FLOPs of one training step on `layout` (see the module doc for the rules).

    `n_layers` overrides the scratch depth; `transformer_config` (cogvideox) overrides
    diffusers' default CogVideoX-2b config.
    """
    tally = _Tally()
    batch = settings.batch_size
    _field_codecs(tally, layout, batch)
    if settings.backbone == "scratch":
        sequence = _scratch(tally, layout, batch, n_layers or settings.n_layers, settings.attention)
    else:
        config = cogvideox_config(transformer_config)
        sequence = _cogvideox(tally, layout, batch, config, settings.adapter_rank)
    return StepFlops(tally.forward, tally.backward, sequence)


def bf16_peak_flops(device_name: str) -> tuple[float, str]:
    """(dense bf16 peak FLOP/s, where it comes from) of a GPU named `device_name`.

    From `BF16_DENSE_PEAKS`; a card not in it is priced at the H100 SXM's peak, and the
    second element says so.
    """
    for key, peak in BF16_DENSE_PEAKS:
        if key.lower() in device_name.lower():
            return peak, f"{key} datasheet, dense bf16"
    return H100_BF16_DENSE_FLOPS, f"{device_name!r} is not in the peak table: H100 SXM's peak"


def _field_codecs(tally: _Tally, layout: CanvasLayout, batch: int) -> None:
    """FieldEncoder and FieldDecoder (`training.fields`); both run over all H*W positions."""
    d, n_fields = layout.d_model, layout.n_fields
    grid_rows = batch * layout.T * layout.H * layout.W
    vectors = [layout.fields[i].dimension for i in layout.vector_fields]
    vector_rows = batch * layout.T * len(vectors) * layout.vector_slots
    chunk = max((-(-dim // layout.vector_slots) for dim in vectors), default=0)
    # encoder: inputs are data (no gradient), weights train
    tally.linear(n_fields, SEMANTIC_DIM, d, grads=1)  # semantic projection, once per step
    tally.linear(grid_rows, 2, d, grads=1)  # (value, presence) per position
    tally.linear(vector_rows, chunk, d, grads=1)
    # decoder: tokens come from trained layers, weights train
    tally.linear(grid_rows, d, 1, grads=2)
    tally.linear(vector_rows, d, chunk, grads=2)


def _scratch(tally: _Tally, layout: CanvasLayout, batch: int, n_layers: int, attention: str) -> int:
    """ScratchBackbone over the T * n_slots real tokens; returns the tokens per sample."""
    d, T, S = layout.d_model, layout.T, layout.n_slots
    tokens = batch * T * S
    tally.linear(batch, TIME_FREQUENCIES, d, grads=1)  # time_mlp, on the diffusion time
    tally.linear(batch, d, d, grads=2)
    for i in range(n_layers):
        tally.linear(batch, d, 4 * d, grads=2)  # adaLN modulation
        tally.linear(tokens, d, 3 * d, grads=2)  # qkv
        if attention == "full":
            tally.attention(batch, T * S, d)
        elif i % 2 == 0:  # space: the positions of one time step
            tally.attention(batch * T, S, d)
        else:  # time: one position across the steps
            tally.attention(batch * S, T, d)
        tally.linear(tokens, d, d, grads=2)  # attention out
        tally.linear(tokens, d, SCRATCH_MLP_RATIO * d, grads=2)
        tally.linear(tokens, SCRATCH_MLP_RATIO * d, d, grads=2)
    tally.linear(batch, d, 2 * d, grads=2)  # final modulation
    return T * S


def cogvideox_config(config: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A CogVideoX transformer config: diffusers' defaults (CogVideoX-2b) updated by `config`.

    The defaults are read from `CogVideoXTransformer3DModel.__init__`'s signature; nothing
    is built or downloaded.
    """
    from diffusers import CogVideoXTransformer3DModel

    parameters = inspect.signature(CogVideoXTransformer3DModel.__init__).parameters.values()
    defaults = {p.name: p.default for p in parameters if p.default is not inspect.Parameter.empty}
    merged = {**defaults, **dict(config or {})}
    if merged["patch_size_t"] is not None or merged["ofs_embed_dim"]:
        raise ValueError("CogVideoX 1.5 transformers (patch_size_t / ofs) are not supported")
    return merged


def _cogvideox(
    tally: _Tally, layout: CanvasLayout, batch: int, config: Mapping[str, Any], rank: int
) -> int:
    """CogVideoXGraft around a frozen transformer; returns the tokens per sample.

    The transformer attends over the learned conditioning sequence (in place of the T5
    text) and the latent patches of the (T, H', W') grid, H and W padded to the patch.
    """
    p, channels, out_channels = config["patch_size"], config["in_channels"], config["out_channels"]
    inner = config["num_attention_heads"] * config["attention_head_dim"]
    time_dim, text_len = config["time_embed_dim"], config["max_text_seq_length"]
    d, T = layout.d_model, layout.T
    latent = T * -(-layout.H // p) * -(-layout.W // p)
    sequence = text_len + latent
    grid_rows = batch * T * layout.H * layout.W
    tally.linear(grid_rows, d, channels, grads=2)  # graft proj_in (trainable)
    tally.linear(batch, inner, time_dim, grads=0)  # time embedding: frozen, of the time only
    tally.linear(batch, time_dim, time_dim, grads=0)
    tally.linear(batch * text_len, config["text_embed_dim"], inner, grads=1)  # text_proj
    tally.linear(batch * latent, channels * p * p, inner, grads=1)  # patch embedding
    for _ in range(config["num_layers"]):
        tally.linear(2 * batch, time_dim, 6 * inner, grads=0)  # norm1, norm2 modulation
        tally.linear(4 * batch * sequence, inner, inner, grads=1)  # q, k, v, out
        tally.attention(batch, sequence, inner)
        tally.linear(batch * sequence, inner, FF_MULT * inner, grads=1)
        tally.linear(batch * sequence, FF_MULT * inner, inner, grads=1)
        tally.linear(batch * latent, inner, rank, grads=2)  # adapter (trainable)
        tally.linear(batch * latent, rank, inner, grads=2)
    tally.linear(batch, time_dim, 2 * inner, grads=0)  # norm_out modulation
    tally.linear(batch * latent, inner, p * p * out_channels, grads=1)  # transformer proj_out
    tally.linear(grid_rows, out_channels, d, grads=2)  # graft proj_out (trainable)
    return sequence


@dataclass(frozen=True)
class ComputeEstimate:
    """Per-node compute of a curriculum; `rows` are plain dicts in topological order."""

    rows: list[dict[str, Any]]
    backbone: str
    batch_size: int
    utilisation: float
    peak_flops: float
    _by_name: dict[str, dict[str, Any]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_name", {row["node"]: row for row in self.rows})

    @property
    def total_steps(self) -> int:
        return sum(row["steps"] for row in self.rows)

    @property
    def total_flops(self) -> int:
        return sum(row["total_flops"] for row in self.rows)

    @property
    def total_gpu_hours(self) -> float:
        return sum(row["h100_hours"] for row in self.rows)

    @property
    def wall_clock_hours(self) -> float:
        """Hours with one GPU per node and each tier's nodes in parallel: sum of tier maxima."""
        slowest: dict[int, float] = {}
        for row in self.rows:
            slowest[row["tier"]] = max(slowest.get(row["tier"], 0.0), row["h100_hours"])
        return sum(slowest.values())

    def node_metadata(self, name: str) -> dict[str, Any]:
        """JSON-able compute facts of one node, for its Dagster asset's metadata."""
        if name not in self._by_name:
            raise KeyError(f"no node {name!r}; nodes are {list(self._by_name)}")
        row = self._by_name[name]
        return {
            **{k: v for k, v in row.items() if k != "node"},
            "utilisation": self.utilisation,
            "peak_flops": self.peak_flops,
            "backbone": self.backbone,
            "batch_size": self.batch_size,
        }

    def assumptions(self) -> str:
        """One line: what a step is and how FLOPs become hours."""
        return (
            f"FLOPs per step: forward + backward of {self.batch_size} samples on the "
            f"{self.backbone} backbone; H100-hours at {self.utilisation:.0%} of "
            f"{self.peak_flops / 1e12:,.0f} TFLOP/s (dense bf16)."
        )

    def to_markdown(self) -> str:
        """One table row per node."""
        lines = [
            "| Node | Tier | Fields | Canvas (TxHxW) | Positions | Sequence | Steps "
            "| FLOPs/step | H100-hrs |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        lines += [
            f"| {r['node']} | {r['tier']} | {r['fields']} | {r['canvas']} | {r['positions']:,} "
            f"| {r['sequence_length']:,} | {r['steps']:,} | {r['flops_per_step']:.2e} "
            f"| {_hours(r['h100_hours'])} |"
            for r in self.rows
        ]
        return "\n".join([*lines, "", self.assumptions()])

    def by_tier(self) -> dict[int, list[dict[str, Any]]]:
        """The rows of each tier, tiers in order."""
        by_tier: dict[int, list[dict[str, Any]]] = {}
        for row in self.rows:
            by_tier.setdefault(row["tier"], []).append(row)
        return dict(sorted(by_tier.items()))

    def tier_table(self) -> str:
        """The seed's table (ranges per tier) and the totals line."""
        lines = [
            "| Tier | Nodes | Fields/node | Steps/node | H100-hrs/node |",
            "|---|---|---|---|---|",
        ]
        for tier, rows in self.by_tier().items():
            fields = _span([r["fields"] for r in rows], str)
            steps = _span([r["steps"] for r in rows], "{:,}".format)
            hours = _span([r["h100_hours"] for r in rows], _hours)
            lines.append(f"| {tier} | {len(rows)} | {fields} | {steps} | {hours} |")
        total = (
            f"Total: {self.total_steps:,} training steps across {len(self.rows)} nodes, "
            f"{_hours(self.total_gpu_hours)} H100-hours ({_hours(self.wall_clock_hours)} "
            "wall-clock with tier-parallelism)."
        )
        return "\n".join([*lines, "", total, self.assumptions()])


def _hours(x: float) -> str:
    """Three significant digits, never in scientific notation."""
    if x >= 100:
        return f"{x:,.0f}"
    return np.format_float_positional(x, precision=3, fractional=False, trim="-")


def _span(values: Sequence[Any], fmt: Callable[[Any], str]) -> str:
    """'low-high' of the formatted values, or one value when they format alike."""
    low, high = min(values), max(values)
    return fmt(low) if fmt(low) == fmt(high) else f"{fmt(low)}-{fmt(high)}"


def estimate_compute(
    nodes: Sequence[DAGNode],
    settings: CurriculumSettings | None = None,
    *,
    utilisation: float = 0.4,
    peak_flops: float = H100_BF16_DENSE_FLOPS,
    schema: Schema | None = None,
    transformer_config: Mapping[str, Any] | None = None,
) -> ComputeEstimate:
    """Per node of a curriculum: fields, canvas, backbone tokens, steps, FLOPs, GPU-hours.

    `nodes` are validated first (a node without fields gets its parents'). `fields`
    counts observable fields (the regime latents come on top); `positions` is
    T * H * W; `sequence_length` the tokens per sample the backbone runs over.
    `transformer_config` overrides the CogVideoX-2b config (cogvideox backbone only).
    """
    if not 0 < utilisation <= 1:
        raise ValueError(f"utilisation must be in (0, 1], got {utilisation}")
    settings = settings or CurriculumSettings()
    schema = schema or default_schema()
    ordered = validate_dag(nodes, schema)
    tier = tiers(ordered)
    rows = []
    for node in ordered:
        layout = node_layout(node, settings, schema)
        flops = step_flops(
            layout, settings, n_layers=node.n_layers, transformer_config=transformer_config
        )
        total = flops.total * node.n_steps
        rows.append(
            {
                "node": node.name,
                "tier": tier[node.name],
                "fields": layout.n_fields - int(layout.latent_mask.sum()),
                "canvas": f"{layout.T}x{layout.H}x{layout.W}",
                "positions": layout.n_positions,
                "sequence_length": flops.sequence,
                "steps": node.n_steps,
                "flops_per_step": flops.total,
                "total_flops": total,
                "h100_hours": total / (peak_flops * utilisation) / 3600,
            }
        )
    return ComputeEstimate(rows, settings.backbone, settings.batch_size, utilisation, peak_flops)

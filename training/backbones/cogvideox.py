"""CogVideoX graft: canvas tokens through a frozen pretrained video diffusion transformer.

    tokens (B, T, H*W, d)
      -> proj_in (trainable, per position, d -> in_channels)
      -> latent video (B, T, C, H', W'): H, W padded up to multiples of the patch size,
         canvas time steps are latent frames, padding positions zeroed
      -> CogVideoXTransformer3DModel: patch embedding, blocks, final norm, proj_out (FROZEN);
         after every block a trainable zero-initialised bottleneck adapter adds to the
         hidden states, and a learned conditioning sequence stands in for the T5 text
         embedding
      -> proj_out (trainable, out_channels -> d) -> tokens (B, T, H*W, d), padding zeroed

At initialisation the adapters are zero, so the graft computes exactly the pretrained
function between the two projections. The graft runs the transformer's own submodules
(the loop of `CogVideoXTransformer3DModel.forward` with adapters between blocks); it
only freezes the transformer and moves it to the device and dtype, without hooks or
wrappers, so one frozen transformer can serve several grafts.

The frozen part runs in `dtype` (bfloat16 on CUDA, float32 otherwise); trainable
parameters are always float32 and activations are cast at the boundaries. CogVideoX 1.0
models are supported (2b: sincos positions, 5b: rotary); 1.5 models (temporal patches,
`ofs` embedding) are not.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from diffusers import CogVideoXTransformer3DModel
from diffusers.models.embeddings import get_3d_rotary_pos_embed
from diffusers.utils import is_accelerate_available
from huggingface_hub import constants as hub_constants
from huggingface_hub.errors import HFValidationError
from torch import Tensor, nn

from canvas.layout import CanvasLayout
from training.backbones.base import Backbone
from training.devices import check_device
from training.settings import DEFAULT_MODEL

__all__ = [
    "BottleneckAdapter",
    "CogVideoXGraft",
    "PretrainedWeightsNotFound",
    "cogvideox_2b_trainable_fraction",
    "load_pretrained_transformer",
    "random_transformer",
]

TRAIN_TIMESTEPS = 1000
CONDITIONING_INIT_STD = 0.02


class PretrainedWeightsNotFound(RuntimeError):
    """The pretrained transformer is neither in a local directory nor in the HF cache."""


def _missing_weights_message(model_id: str) -> str:
    repo = DEFAULT_MODEL if Path(model_id).is_absolute() or model_id.startswith(".") else model_id
    return (
        f"CogVideoX transformer weights for {model_id!r} were not found: no directory with "
        f"transformer/config.json and the weights there, and nothing in the Hugging Face "
        f"cache ({hub_constants.HF_HUB_CACHE}); nothing is downloaded here. To get them "
        f"(transformer only; CogVideoX-2b is ~3.4 GB in fp16):\n"
        f'  - on a machine with internet: hf download {repo} --include "transformer/*"\n'
        f'    (older huggingface_hub: huggingface-cli download {repo} --include "transformer/*")\n'
        f"    then copy its cache to {hub_constants.HF_HUB_CACHE} on this machine, or\n"
        f"  - add --local-dir /path/to/model to that command, copy the directory here and pass\n"
        f'    pretrained_model_id="/path/to/model".\n'
        f"Without weights (tests, CPU experiments) pass "
        f"transformer=CogVideoXTransformer3DModel(<small config>)."
    )


def load_pretrained_transformer(
    model_id: str = DEFAULT_MODEL,
    *,
    local_files_only: bool = True,
    dtype: torch.dtype | None = None,
) -> CogVideoXTransformer3DModel:
    """Load the pretrained transformer from a local directory or the HF cache.

    `model_id` is a hub id or a directory holding `transformer/` (or the transformer
    directory itself). With `local_files_only` (the default) the network is never
    touched; missing weights raise `PretrainedWeightsNotFound` at once.
    """
    path = Path(model_id).expanduser()
    direct = path.is_dir() and (path / "config.json").is_file()
    direct = direct and not (path / "transformer" / "config.json").is_file()
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*local_dir_use_symlinks.*")
            return CogVideoXTransformer3DModel.from_pretrained(
                str(path) if path.is_dir() else model_id,
                subfolder=None if direct else "transformer",
                local_files_only=local_files_only,
                torch_dtype=dtype,
                low_cpu_mem_usage=is_accelerate_available(),
            )
    except (OSError, HFValidationError) as err:
        # the loader's own chain is ~50 lines of hub internals; its first line is the cause
        cause = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        message = f"{_missing_weights_message(model_id)}\n(loader said: {cause[:300]})"
        raise PretrainedWeightsNotFound(message) from None


def random_transformer(
    config: Mapping[str, Any] | None = None, *, device: str | torch.device = "cpu"
) -> CogVideoXTransformer3DModel:
    """A randomly initialised transformer of diffusers' default config (CogVideoX-2b)
    updated by `config`, built directly on `device` (no weights are read).

    For benchmarks and tests; "meta" builds the architecture without memory.
    """
    with torch.device(device):
        return CogVideoXTransformer3DModel(**dict(config or {}))


class BottleneckAdapter(nn.Module):
    """Residual branch up(gelu(down(layernorm(h)))); `up` starts at zero, so does the branch."""

    def __init__(self, dim: int, rank: int, device: torch.device | None = None) -> None:
        super().__init__()
        self.down = nn.Linear(dim, rank, device=device)
        self.up = nn.Linear(rank, dim, device=device)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, h: Tensor) -> Tensor:
        """The residual to add to h (computed in float32, returned in h's dtype)."""
        x = F.layer_norm(h.float(), h.shape[-1:])
        return self.up(F.gelu(self.down(x))).to(h.dtype)


def _resize_crop_region(
    grid: tuple[int, int], base_width: int, base_height: int
) -> tuple[tuple[int, int], tuple[int, int]]:
    """The crop region the CogVideoX pipeline uses for rotary embeddings.

    Same as `diffusers.pipelines.cogvideo.pipeline_cogvideox.get_resize_crop_region_for_grid`
    (copied: importing the pipeline module pulls in transformers' T5).
    """
    h, w = grid
    if h / w > base_height / base_width:
        resize_height, resize_width = base_height, int(round(base_height / h * w))
    else:
        resize_width, resize_height = base_width, int(round(base_width / w * h))
    top = int(round((base_height - resize_height) / 2.0))
    left = int(round((base_width - resize_width) / 2.0))
    return (top, left), (top + resize_height, left + resize_width)


def _numel(params: Iterable[nn.Parameter]) -> int:
    return sum(p.numel() for p in params)


class CogVideoXGraft(Backbone):
    """Trainable projections, adapters and conditioning around a frozen CogVideoX transformer.

    `transformer=None` loads `pretrained_model_id` offline (see
    `load_pretrained_transformer`); pass a `CogVideoXTransformer3DModel` to use it as is
    (it is frozen, set to eval and moved to `device`/`dtype` in place). `device=None`
    keeps the transformer's device; `dtype=None` is bfloat16 on CUDA, else float32.
    """

    name = "cogvideox"

    def __init__(
        self,
        bound: CanvasLayout,
        pretrained_model_id: str = DEFAULT_MODEL,
        transformer: CogVideoXTransformer3DModel | None = None,
        adapter_rank: int = 8,
        local_files_only: bool = True,
        dtype: torch.dtype | None = None,
        device: str | torch.device | None = None,
    ) -> None:
        super().__init__(bound)
        if device is None:
            device = next(transformer.parameters()).device if transformer is not None else "cpu"
        device = check_device(device)  # before any weights are read
        self.frozen_dtype = dtype or (torch.bfloat16 if device.type == "cuda" else torch.float32)
        self.source = pretrained_model_id if transformer is None else "given transformer"
        if transformer is None:
            transformer = load_pretrained_transformer(
                pretrained_model_id, local_files_only=local_files_only, dtype=self.frozen_dtype
            )
        config = transformer.config
        if config.patch_size_t is not None or config.ofs_embed_dim:
            raise ValueError("CogVideoX 1.5 transformers (patch_size_t / ofs) are not supported")
        transformer.requires_grad_(False).eval().to(device)
        if transformer.dtype != self.frozen_dtype:
            transformer.to(dtype=self.frozen_dtype)
        self.transformer = transformer

        p = config.patch_size
        self.grid = (bound.T, math.ceil(bound.H / p) * p, math.ceil(bound.W / p) * p)
        self.canvas_hw = (bound.H, bound.W)
        inner = config.num_attention_heads * config.attention_head_dim
        self.adapter_rank = adapter_rank
        self.proj_in = nn.Linear(bound.d_model, config.in_channels, device=device)
        self.proj_out = nn.Linear(config.out_channels, bound.d_model, device=device)
        self.adapters = nn.ModuleList(
            BottleneckAdapter(inner, adapter_rank, device) for _ in range(config.num_layers)
        )
        self.conditioning = nn.Parameter(
            CONDITIONING_INIT_STD
            * torch.randn(config.max_text_seq_length, config.text_embed_dim, device=device)
        )

        real = torch.arange(self.n_positions, device=device) < self.n_slots
        self.register_buffer("real_positions", real, persistent=False)
        latent_real = real.view(bound.H, bound.W)
        latent_real = F.pad(latent_real, (0, self.grid[2] - bound.W, 0, self.grid[1] - bound.H))
        self.register_buffer("latent_real", latent_real, persistent=False)
        self.use_rotary = config.use_rotary_positional_embeddings
        if self.use_rotary:
            cos, sin = self._rotary_embedding(device)
            self.register_buffer("rotary_cos", cos, persistent=False)
            self.register_buffer("rotary_sin", sin, persistent=False)

    def _rotary_embedding(self, device: torch.device) -> tuple[Tensor, Tensor]:
        """`image_rotary_emb` for this graft's (frames, H'/p, W'/p) grid, as the pipeline does."""
        config = self.transformer.config
        p = config.patch_size
        grid = (self.grid[1] // p, self.grid[2] // p)
        crop = _resize_crop_region(grid, config.sample_width // p, config.sample_height // p)
        return get_3d_rotary_pos_embed(
            embed_dim=config.attention_head_dim,
            crops_coords=crop,
            grid_size=grid,
            temporal_size=self.grid[0],
            device=device,
        )

    def train(self, mode: bool = True) -> CogVideoXGraft:
        """Train the trainable parts; the frozen transformer always stays in eval mode."""
        super().train(mode)
        self.transformer.eval()
        return self

    def forward(self, tokens: Tensor, *, timestep: Tensor | float | None = None) -> Tensor:
        """(B, T, H*W, d) -> (B, T, H*W, d); timestep in [0, 1] maps to steps 0..999."""
        t = self._timestep(tokens, timestep) * (TRAIN_TIMESTEPS - 1)
        b = tokens.shape[0]
        frames, height, width = self.grid
        x = self.proj_in(tokens).view(b, frames, *self.canvas_hw, -1)
        x = F.pad(x, (0, 0, 0, width - self.canvas_hw[1], 0, height - self.canvas_hw[0]))
        x = x * self.latent_real[..., None]
        out = self._transformer(x.permute(0, 1, 4, 2, 3).to(self.frozen_dtype), t)
        out = out.float().permute(0, 1, 3, 4, 2)[:, :, : self.canvas_hw[0], : self.canvas_hw[1]]
        out = self.proj_out(out.reshape(b, frames, self.n_positions, -1))
        return out * self.real_positions[:, None]

    def _transformer(self, latent: Tensor, timestep: Tensor) -> Tensor:
        """`CogVideoXTransformer3DModel.forward` with an adapter after every block.

        latent (B, F, C, H', W') in the frozen dtype, timestep (B,) float in 0..999.
        """
        tf = self.transformer
        b, frames, _, height, width = latent.shape
        emb = tf.time_embedding(tf.time_proj(timestep).to(self.frozen_dtype))
        cond = self.conditioning.to(self.frozen_dtype).expand(b, -1, -1)
        rotary = (self.rotary_cos, self.rotary_sin) if self.use_rotary else None
        h = tf.embedding_dropout(tf.patch_embed(cond, latent))
        enc, h = h[:, : cond.shape[1]], h[:, cond.shape[1] :]
        for block, adapter in zip(tf.transformer_blocks, self.adapters, strict=True):
            h, enc = block(
                hidden_states=h, encoder_hidden_states=enc, temb=emb, image_rotary_emb=rotary
            )
            h = h + adapter(h)
        h = tf.proj_out(tf.norm_out(tf.norm_final(h), temb=emb))
        p = tf.config.patch_size
        out = h.reshape(b, frames, height // p, width // p, -1, p, p)
        return out.permute(0, 1, 4, 2, 5, 3, 6).flatten(5, 6).flatten(3, 4)

    def describe(self) -> dict[str, object]:
        """Parameter counts (with the trainable breakdown), source and latent grid."""
        counts = {
            "proj_in": _numel(self.proj_in.parameters()),
            "proj_out": _numel(self.proj_out.parameters()),
            "adapters": _numel(self.adapters.parameters()),
            "conditioning": self.conditioning.numel(),
        }
        info = super().describe()
        return {
            **info,
            "trainable_percent": f"{100 * info['trainable_fraction']:.3f}%",
            "trainable_breakdown": counts,
            "source": self.source,
            "adapter_rank": self.adapter_rank,
            "latent_grid": list(self.grid),
            "frozen_dtype": str(self.frozen_dtype),
        }


def cogvideox_2b_trainable_fraction(
    bound: CanvasLayout, adapter_rank: int = 8
) -> dict[str, object]:
    """`describe()` of a graft on the real CogVideoX-2b architecture, built without weights.

    diffusers' default `CogVideoXTransformer3DModel()` config is CogVideoX-2b; it is
    instantiated on the meta device (no memory, no download).
    """
    transformer = random_transformer(device="meta")
    graft = CogVideoXGraft(bound, transformer=transformer, adapter_rank=adapter_rank)
    return {**graft.describe(), "source": "CogVideoX-2b architecture on the meta device"}

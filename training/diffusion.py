"""DiffusionWorldModelTrainer: generate hidden canvas positions by denoising, conditioned on
what is visible, with a cosine noise schedule that gives slow fields less noise.

Noise schedule (continuous time t in [0, 1], Nichol & Dhariwal's cosine schedule)::

    alpha_bar(t) = clip(cos^2((t + s) / (1 + s) * pi/2) / cos^2(s / (1 + s) * pi/2),
                        min_alpha_bar, 1)

so alpha_bar(0) = 1 (clean) and alpha_bar(1) = min_alpha_bar (almost pure noise).

Frequency-aware noise: every field f gets a noise scale from its period (in days,
`CanvasLayout.period_days`)::

    sigma_f = clip((1 day / period_days_f) ** gamma, min_scale, 1)

with gamma = 0.25: daily fields 1.0, weekly 0.61, monthly 0.43, quarterly 0.32, annual
0.23, multi-year 0.16. A field at time t is noised as

    x_t = sqrt(alpha_bar(t)) * x_0 + sqrt(1 - alpha_bar(t)) * sigma_f * eps,  eps ~ N(0, 1)

so the signal-to-noise ratio of field f is alpha_bar / ((1 - alpha_bar) * sigma_f^2): a
slow field stays closer to its clean value at every t than a fast one.

Training step: draw the positions to generate (`sample_hidden`), t ~ U(0, 1) per sample
and eps, all from the step's generator. The model input carries the visible clean values
and the noised hidden values (presence 1 there); a learned "this token is noised"
embedding (`NoisedTokenEmbedding`, checkpointed with the other modules) is added to the
tokens of the hidden positions, and the backbone gets `timestep=t`. The decoder predicts
the clean x_0; the loss is the canvas masked loss on the hidden positions (weight =
target_weight x hidden).

Sampling is DDIM (eta = 0, deterministic given eps): hidden positions start at
sigma_f * eps and, on a grid t_0 = 1 > t_1 > ... > t_n = 0,

    eps_hat = (x_t - sqrt(alpha_bar(t)) * x0_hat) / (sqrt(1 - alpha_bar(t)) * sigma_f)
    x_t'    = sqrt(alpha_bar(t')) * x0_hat + sqrt(1 - alpha_bar(t')) * sigma_f * eps_hat

Visible positions keep their given values exactly.

Vector fields (news embeddings) are visible context only: they are never noised, never
hidden in training and cannot be generated.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor, nn

from canvas.layout import CanvasLayout
from training.config import MaskingConfig, TrainConfig
from training.losses import ElementwiseLoss
from training.masked import MaskedCanvasTrainer
from training.masking import sample_hidden

__all__ = [
    "CosineNoiseSchedule",
    "DiffusionWorldModelTrainer",
    "NoisedTokenEmbedding",
    "frequency_scale",
]


def frequency_scale(bound: CanvasLayout, gamma: float = 0.25, min_scale: float = 0.1) -> Tensor:
    """(F,) noise scale per field: clip((1 day / period_days) ** gamma, min_scale, 1)."""
    period = torch.as_tensor(bound.period_days, dtype=torch.float32)
    return (1.0 / period).pow(gamma).clamp(min_scale, 1.0)


class CosineNoiseSchedule:
    """Cosine alpha_bar(t) over continuous t in [0, 1]; see the module docstring."""

    frequency_scale = staticmethod(frequency_scale)

    def __init__(self, s: float = 0.008, min_alpha_bar: float = 1e-4) -> None:
        self.s = s
        self.min_alpha_bar = min_alpha_bar

    def _cos2(self, t: Tensor) -> Tensor:
        return (((t + self.s) / (1 + self.s) * (math.pi / 2)).cos()) ** 2

    def alpha_bar(self, t: Tensor) -> Tensor:
        """float32 alpha_bar at times `t` (any shape), clipped to [min_alpha_bar, 1].

        Computed in float64 on the CPU, so that alpha_bar(0) is exactly 1 (a clean input).
        """
        t64 = t.detach().to("cpu", torch.float64)
        ratio = self._cos2(t64) / self._cos2(torch.zeros((), dtype=torch.float64))
        return ratio.clamp(self.min_alpha_bar, 1.0).to(t.device, torch.float32)

    def add_noise(self, x0: Tensor, noise: Tensor, t: Tensor, scale: Tensor | float) -> Tensor:
        """sqrt(ab) * x0 + sqrt(1 - ab) * scale * noise; x0 (B, ...), t (B,), scale (F,)."""
        ab = self.alpha_bar(t).reshape(-1, *([1] * (x0.dim() - 1)))
        return ab.sqrt() * x0 + (1 - ab).sqrt() * scale * noise


class NoisedTokenEmbedding(nn.Module):
    """A learned embedding added to the tokens of the positions being denoised."""

    def __init__(self, bound: CanvasLayout, d_model: int) -> None:
        super().__init__()
        self.n_positions = bound.H * bound.W
        self.register_buffer(
            "slot_field", torch.as_tensor(bound.slot_field, dtype=torch.long), persistent=False
        )
        self.flag = nn.Parameter(torch.randn(d_model) * d_model**-0.5)

    def forward(self, tokens: Tensor, hidden: Tensor) -> Tensor:
        """tokens (B, T, H*W, d) + flag where `hidden` (B, T, F) marks a noised field."""
        per_slot = hidden[..., self.slot_field].to(tokens.dtype)
        per_position = nn.functional.pad(per_slot, (0, self.n_positions - per_slot.shape[-1]))
        return tokens + per_position[..., None] * self.flag.to(tokens.dtype)


class DiffusionWorldModelTrainer(MaskedCanvasTrainer):
    """MaskedCanvasTrainer with a denoising objective: same loop, checkpoints and resume.

    The trainer owns a `NoisedTokenEmbedding` (module "noise_flag"), saved and restored
    with encoder, backbone and decoder. A given `optimizer` gets a param group for it.
    """

    def __init__(
        self,
        bound_schema: CanvasLayout,
        backbone: nn.Module,
        encoder: nn.Module,
        decoder: nn.Module,
        optimizer: torch.optim.Optimizer | None = None,
        *,
        schedule: CosineNoiseSchedule | None = None,
        config: TrainConfig | None = None,
        output_losses: Mapping[int, ElementwiseLoss] | None = None,
        checkpoint_dir: str | Path | None = None,
        device: str | torch.device = "cpu",
        noise_gamma: float = 0.25,
    ) -> None:
        # before super().__init__: the default optimiser is built over `self.modules`
        d_model = getattr(encoder, "d_model", bound_schema.d_model)
        # the denoiser adds no persistence anchor: the decoder's carry-over weights are unused
        persistence = getattr(decoder, "value_persistence", None)
        if persistence is not None:
            persistence.requires_grad_(False)
        self.noise_flag = NoisedTokenEmbedding(bound_schema, d_model).to(device)
        if optimizer is not None:
            optimizer.add_param_group({"params": list(self.noise_flag.parameters())})
        super().__init__(
            bound_schema,
            backbone,
            encoder,
            decoder,
            optimizer,
            config=config,
            output_losses=output_losses,
            checkpoint_dir=checkpoint_dir,
            device=device,
        )
        self.schedule = schedule or CosineNoiseSchedule()
        self.noise_gamma = noise_gamma
        self.noise_scale = frequency_scale(bound_schema, noise_gamma).to(self.device)
        is_vector = torch.zeros(bound_schema.n_fields, dtype=torch.bool)
        is_vector[self.vector_fields] = True
        self.is_vector = is_vector.to(self.device)

    @property
    def modules(self) -> dict[str, nn.Module]:
        return {**super().modules, "noise_flag": self.noise_flag}

    def checkpoint_meta(self) -> dict[str, object]:
        """The masked trainer's record plus the diffusion objective's settings."""
        return {
            **super().checkpoint_meta(),
            "objective": "diffusion",
            "noise_gamma": self.noise_gamma,
            "schedule": {"s": self.schedule.s, "min_alpha_bar": self.schedule.min_alpha_bar},
        }

    # -- the model ---------------------------------------------------------------------

    def noised_input(
        self, batch: Mapping[str, Tensor], hidden: Tensor, t: Tensor, noise: Tensor
    ) -> dict[str, Tensor]:
        """The model's input: visible values clean, hidden ones noised at t, presence 1."""
        noisy = self.schedule.add_noise(batch["values"], noise, t, self.noise_scale)
        return self._with_hidden(batch, hidden, noisy)

    @staticmethod
    def _with_hidden(
        batch: Mapping[str, Tensor], hidden: Tensor, noisy: Tensor
    ) -> dict[str, Tensor]:
        """`batch` with `noisy` values and presence 1 at the hidden positions."""
        presence = batch["presence"].to(noisy.dtype)
        values = torch.where(hidden, noisy, batch["values"] * presence)
        presence = torch.where(hidden, torch.ones_like(presence), presence)
        return {**batch, "values": values, "presence": presence}

    def denoise(self, noisy: Mapping[str, Tensor], hidden: Tensor, t: Tensor) -> dict[str, Tensor]:
        """Predicted clean values (float32) from a noised input at diffusion times t (B,)."""
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.config.amp):
            tokens = self.noise_flag(self.encoder(noisy), hidden)
            prediction = self.decoder(self.backbone(tokens, timestep=t))
        return {k: v.float() for k, v in prediction.items()}

    # -- training ----------------------------------------------------------------------

    def draw(
        self,
        batch: Mapping[str, Tensor],
        generator: torch.Generator,
        masking: MaskingConfig | None = None,
    ) -> dict[str, Tensor]:
        """A step's draws (CPU): positions to generate, t ~ U(0, 1) per sample and eps."""
        scalar_presence = batch["presence"].cpu() * (~self.is_vector.cpu())
        masking = masking or self.config.masking
        hidden = sample_hidden(scalar_presence, self.groups, masking, generator)
        B, T, F = hidden.shape
        t = torch.rand(B, generator=generator)
        noise = torch.randn(B, T, F, generator=generator)
        return {"hidden": hidden, "t": t, "noise": noise}

    def scored(
        self, batch: Mapping[str, Tensor], draws: Mapping[str, Tensor]
    ) -> tuple[Tensor, Tensor]:
        """(denoising loss, its weight sum): x0 predicted at hidden positions noised at t."""
        hidden, t = draws["hidden"], draws["t"]
        prediction = self.denoise(self.noised_input(batch, hidden, t, draws["noise"]), hidden, t)
        return self._masked_loss(prediction, batch, batch["target_weight"] * hidden)

    # -- sampling ----------------------------------------------------------------------

    @torch.no_grad()
    def sample(
        self,
        batch: Mapping[str, Tensor],
        hidden: Tensor,
        *,
        n_steps: int = 50,
        generator: torch.Generator | None = None,
        n_samples: int = 1,
    ) -> dict[str, Tensor]:
        """Generate the `hidden` (B, T, F) positions given the rest of `batch` (DDIM, eta=0).

        Returns {"values": (B, T, F)}: given values where not hidden, generated ones where
        hidden. With `n_samples` > 1 "values" is the ensemble mean, plus "std" (B, T, F)
        and "samples" (n_samples, B, T, F). `generator` (default: seeded by config.seed)
        draws the starting noise, so equal seeds give equal samples.
        """
        if n_steps < 1 or n_samples < 1:
            raise ValueError("n_steps and n_samples must be >= 1")
        hidden = torch.as_tensor(hidden, dtype=torch.bool, device=self.device)
        if (hidden & self.is_vector).any():
            raise ValueError("vector fields are context only: they cannot be generated")
        self.encoder.eval(), self.backbone.eval(), self.decoder.eval()
        generator = generator or torch.Generator().manual_seed(self.config.seed)
        batch = self._to_device(batch)
        B = hidden.shape[0]
        given = batch["values"]
        repeated = {
            k: v.repeat(n_samples, *([1] * (v.dim() - 1)))
            if isinstance(v, Tensor) and v.dim() and v.shape[0] == B
            else v
            for k, v in batch.items()
        }
        hidden_all = hidden.repeat(n_samples, 1, 1)
        scale = self.noise_scale
        x = scale * torch.randn(hidden_all.shape, generator=generator).to(self.device)
        times = torch.linspace(1.0, 0.0, n_steps + 1, device=self.device)
        for t, t_next in zip(times[:-1], times[1:], strict=True):
            noisy = self._with_hidden(repeated, hidden_all, x)
            x0_hat = self.denoise(noisy, hidden_all, t.expand(B * n_samples))["values"]
            ab, ab_next = self.schedule.alpha_bar(t), self.schedule.alpha_bar(t_next)
            eps_hat = (x - ab.sqrt() * x0_hat) / ((1 - ab).sqrt() * scale)
            x = ab_next.sqrt() * x0_hat + (1 - ab_next).sqrt() * scale * eps_hat
        samples = torch.where(hidden_all, x, given.repeat(n_samples, 1, 1)).unflatten(
            0, (n_samples, B)
        )
        if n_samples == 1:
            return {"values": samples[0]}
        return {"values": samples.mean(0), "std": samples.std(0), "samples": samples}

"""Devices checked up front: a device this machine lacks is one clear error, not a torch
assertion from deep inside `module.to`."""

from __future__ import annotations

import torch


class DeviceUnavailableError(RuntimeError):
    """The requested device is not on this machine (or this torch build cannot use it)."""


def available_devices() -> list[str]:
    """The devices torch can use here: "cpu", then "cuda:0".. and "mps" where present."""
    out = ["cpu"]
    if torch.cuda.is_available():
        out += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if torch.backends.mps.is_available():
        out.append("mps")
    return out


def check_device(device: str | torch.device) -> torch.device:
    """`device` as a torch.device when this machine has it; else DeviceUnavailableError
    naming the device and what is available."""
    try:
        chosen = torch.device(device)
    except RuntimeError as err:
        raise DeviceUnavailableError(
            f"device {str(device)!r} is not a torch device: {err}"
        ) from None
    here = available_devices()
    if chosen.type == "cuda":
        if not torch.backends.cuda.is_built():
            why = f"this torch ({torch.__version__}) was built without CUDA"
        elif not torch.cuda.is_available():
            why = "no CUDA device is visible (driver, CUDA_VISIBLE_DEVICES)"
        elif chosen.index is not None and chosen.index >= torch.cuda.device_count():
            why = f"there are {torch.cuda.device_count()} CUDA devices"
        else:
            return chosen
    elif chosen.type == "mps" and not torch.backends.mps.is_available():
        why = "MPS (Apple GPU) is not available"
    else:
        return chosen
    raise DeviceUnavailableError(
        f"device {str(device)!r} is not available: {why}; available here: {', '.join(here)} "
        "(set device to one of them)"
    )

"""A device the machine lacks is one clear error, raised before any work or weights."""

from __future__ import annotations

import pytest
import torch

from canvas.layout import compile_layout
from training import distributed
from training.backbones import CogVideoXGraft
from training.devices import DeviceUnavailableError, available_devices, check_device
from training.settings import WorldModelSettings
from training.world_model import world_model_trainer

# a CUDA device this machine does not have: any on a CPU machine, one past the last on a GPU one
MISSING = f"cuda:{torch.cuda.device_count()}" if torch.cuda.is_available() else "cuda"


def test_the_cpu_is_always_available():
    assert check_device("cpu") == torch.device("cpu")
    assert available_devices()[0] == "cpu"


def test_a_missing_cuda_device_names_itself_and_what_is_here():
    with pytest.raises(DeviceUnavailableError) as info:
        check_device(MISSING)
    message = str(info.value)
    assert repr(MISSING) in message and "available here: cpu" in message
    assert info.value.__cause__ is None


def test_a_device_name_torch_does_not_know_is_refused():
    with pytest.raises(DeviceUnavailableError, match="'gpu0' is not a torch device"):
        check_device("gpu0")


def test_the_trainer_and_the_graft_check_before_any_work(tmp_path):
    with pytest.raises(DeviceUnavailableError):
        distributed.local_device(MISSING, distributed.World())
    bound = compile_layout("country_us.macro.inflation", T=2, d_model=8)
    with pytest.raises(DeviceUnavailableError):  # the world model asset's path
        world_model_trainer(bound, WorldModelSettings(device=MISSING, n_layers=1), tmp_path)
    # the graft refuses before reading weights: no weights exist for this id at all
    with pytest.raises(DeviceUnavailableError):
        CogVideoXGraft(bound, pretrained_model_id="/nonexistent/weights", device=MISSING)

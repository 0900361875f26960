"""Shared fixtures: the recorded real data beside the repository, when present."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]


def recorded_data_dir() -> Path:
    """`$GUWM_RECORDED_DATA`, else ../shared/data beside the repository."""
    return Path(os.environ.get("GUWM_RECORDED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The recorded real data (see its MANIFEST.md); skips the test when it is absent."""
    root = recorded_data_dir()
    if not (root / "MANIFEST.md").is_file():
        pytest.skip(f"recorded data not found at {root} (set GUWM_RECORDED_DATA)")
    return root


@pytest.fixture(scope="session", autouse=True)
def _isolated_user_data(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Nothing a test runs writes into the user's data directory."""
    root = tmp_path_factory.mktemp("user_data")
    patch = pytest.MonkeyPatch()
    patch.setenv("GUWM_WAREHOUSE", str(root / "warehouse.duckdb"))
    patch.setenv("GUWM_EMBEDDING_CACHE", str(root / "embedding_cache"))
    patch.setenv("GUWM_ARTIFACTS", str(root / "artifacts"))
    yield
    patch.undo()


@pytest.fixture(scope="module")
def single_thread() -> Iterator[None]:
    """One intra-op thread for a module of tiny models: on a busy 2-core machine OpenMP
    barriers make two threads many times slower than one. Use with
    `pytestmark = pytest.mark.usefixtures("single_thread")`."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)

"""Shared fixtures: the recorded real data beside the repository, when present."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

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

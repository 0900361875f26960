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

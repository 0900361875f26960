"""Where the warehouse lives: a per-user data directory, never the source tree."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

WAREHOUSE_ENV = "GUWM_WAREHOUSE"


def data_dir() -> Path:
    """The per-user data directory for guwm (e.g. ~/.local/share/guwm)."""
    return Path(platformdirs.user_data_dir("guwm", appauthor=False))


def default_warehouse_path() -> Path:
    """`$GUWM_WAREHOUSE` if set, else `<user data dir>/warehouse.duckdb`."""
    override = os.environ.get(WAREHOUSE_ENV)
    if override:
        return Path(override).expanduser().resolve()
    return data_dir() / "warehouse.duckdb"

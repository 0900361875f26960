"""Where the warehouse lives: a per-user data directory, never the source tree."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import platformdirs

WAREHOUSE_ENV = "GUWM_WAREHOUSE"
ARTIFACTS_ENV = "GUWM_ARTIFACTS"
DAGSTER_HOME_ENV = "DAGSTER_HOME"


def data_dir() -> Path:
    """The per-user data directory for guwm (e.g. ~/.local/share/guwm)."""
    return Path(platformdirs.user_data_dir("guwm", appauthor=False))


def default_warehouse_path() -> Path:
    """`$GUWM_WAREHOUSE` if set, else `<user data dir>/warehouse.duckdb`."""
    override = os.environ.get(WAREHOUSE_ENV)
    if override:
        return Path(override).expanduser().resolve()
    return data_dir() / "warehouse.duckdb"


def default_artifacts_dir(warehouse: str | Path | None = None) -> Path:
    """Where canvases, checkpoints and reports go: `$GUWM_ARTIFACTS` if set, else an
    `artifacts` folder beside `warehouse` (default: the default warehouse)."""
    override = os.environ.get(ARTIFACTS_ENV)
    if override:
        return Path(override).expanduser().resolve()
    return Path(warehouse or default_warehouse_path()).parent / "artifacts"


def default_dagster_home(warehouse: str | Path | None = None) -> Path:
    """The Dagster instance the main job records into and `guwm dev` opens: `$DAGSTER_HOME`
    if set, else a `dagster` folder beside `warehouse` (default: the default warehouse).
    Created with a dagster.yaml (telemetry off) when it is new."""
    override = os.environ.get(DAGSTER_HOME_ENV)
    home = (
        Path(override).expanduser().resolve()
        if override
        else Path(warehouse or default_warehouse_path()).parent / "dagster"
    )
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        config.write_text("telemetry:\n  enabled: false\n")
    return home


@contextmanager
def staged_directory(dest: Path) -> Iterator[Path]:
    """A staging directory beside `dest` that replaces `dest` whole when the block ends.

    Readers see the old directory or the new one, never half of either; if the block
    raises, the staging directory is removed and `dest` is untouched.
    """
    staging = dest.with_name(f".{dest.name}.{uuid.uuid4().hex[:8]}")
    staging.mkdir(parents=True)
    try:
        yield staging
        previous = dest.with_name(f".{dest.name}.old")
        # left by a swap killed while it removed the previous copy: it would block the rename
        shutil.rmtree(previous, ignore_errors=True)
        if dest.exists():
            dest.rename(previous)
        staging.rename(dest)
        shutil.rmtree(previous, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise

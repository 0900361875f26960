"""Dagster wiring of guwm: `dagster dev -m dagster_defs`.

`defs` loads on first use (PEP 562), so the `guwm` CLI (`dagster_defs.cli`) starts
without importing Dagster or torch. Dagster finds it through dir() and getattr.
"""

from typing import Any

__all__ = ["defs"]


def __getattr__(name: str) -> Any:
    if name == "defs":
        from dagster_defs.definitions import defs

        return defs
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__

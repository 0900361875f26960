"""Typed settings as plain config values, and back.

Settings are declared once, as frozen dataclasses in the layer that uses them. A Dagster
config class or resource is built from a dataclass's fields (`config_fields`: plain
types, the same defaults), and the values it holds become the dataclass again
(`from_plain`), so a setting added to the dataclass reaches every front end.
"""

from __future__ import annotations

import dataclasses
import functools
import operator
import types
import typing
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal


def config_fields(
    settings: type, nested: Callable[[type, dict[str, Any]], type]
) -> dict[str, tuple[Any, Any]]:
    """The fields of `settings` (a dataclass) as ``name: (plain type, default)``, the
    field definitions of a config class (pydantic's create_model) built from it.

    Plain config types: a path or a literal choice is a str, a tuple a list. A nested
    dataclass (a retry policy) becomes ``nested(its type, its own config_fields)``, a
    class whose keyword arguments are those fields. Back: :func:`from_plain`.
    """
    hints = typing.get_type_hints(settings)
    fields: dict[str, tuple[Any, Any]] = {}
    for f in dataclasses.fields(settings):
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            default = ...  # required (pydantic's marker)
        plain = _plain_type(hints[f.name])
        if dataclasses.is_dataclass(plain):
            model = nested(plain, config_fields(plain, nested))
            fields[f.name] = (model, model(**dataclasses.asdict(default)))
        else:
            fields[f.name] = (plain, list(default) if isinstance(default, tuple) else default)
    return fields


def _plain_type(hint: Any) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Path or origin is Literal:
        return str
    if origin is tuple:
        return list[args[0]]
    if origin in (typing.Union, types.UnionType):
        return functools.reduce(operator.or_, map(_plain_type, args))
    return hint


def from_plain(settings: type, values: Mapping[str, Any]) -> Any:
    """The dataclass `settings` from plain config values (the types of `config_fields`);
    a name it does not have is a ValueError naming the ones it has."""
    names = [f.name for f in dataclasses.fields(settings)]
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise ValueError(f"{settings.__name__}: unknown {unknown}; expected one of {names}")
    hints = typing.get_type_hints(settings)
    return settings(
        **{
            f.name: _library_value(hints[f.name], values[f.name])
            for f in dataclasses.fields(settings)
            if f.name in values
        }
    )


def _library_value(hint: Any, value: Any) -> Any:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        if value is None:
            return None
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
    if hint is Path:
        return Path(value) if value else None  # an empty path setting is no path
    if typing.get_origin(hint) is tuple:
        return tuple(value)
    if dataclasses.is_dataclass(hint):
        return from_plain(hint, value)
    return value

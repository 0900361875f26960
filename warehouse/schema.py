"""The field schema: every quantity the world model knows about, addressed by a dotted path.

A field path such as ``country_us.macro.inflation.headline_cpi`` is a sequence of segments
matching ``[A-Za-z][A-Za-z0-9_]*`` joined by dots; the first segment is the domain. Segments are
lower case except firm tickers (``firm_AAPL``, ``firm_BRK_B``).

Per-firm fields are declared once as *templates* whose path holds the placeholder
``<TICKER>`` (``firm_<TICKER>.earnings.eps_actual``); any normalised ticker instantiates them.
The declared catalogue lives in :mod:`warehouse.catalog`; :func:`default_schema` builds it.
"""

from __future__ import annotations

import difflib
import fnmatch
import functools
import hashlib
import json
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, replace

import polars as pl

from warehouse.fields import TICKER_PLACEHOLDER, Field

_TICKER = r"[A-Z][A-Z0-9_]*"
_TICKER_RE = re.compile(_TICKER)
_GLOB_CHARS = frozenset("*?[")


class UnknownFieldError(KeyError):
    """A path (or projection pattern) that names no field; carries the nearest valid paths."""

    def __init__(self, path: str, suggestions: Iterable[str] = (), is_pattern: bool = False):
        self.path = path
        self.suggestions = list(suggestions)
        self.is_pattern = is_pattern
        super().__init__(path, self.suggestions, is_pattern)

    def __str__(self) -> str:
        head = (
            f"no field matches pattern {self.path!r}"
            if self.is_pattern
            else f"unknown field path {self.path!r}"
        )
        if not self.suggestions:
            return head
        return f"{head}; did you mean: {', '.join(self.suggestions)}?"


def firm_entity(ticker: str) -> str:
    """Normalise an exchange ticker to its firm domain: ``"BRK-B"`` -> ``"firm_BRK_B"``."""
    return f"firm_{_normalise_ticker(ticker)}"


def _normalise_ticker(ticker: str) -> str:
    if not isinstance(ticker, str):
        raise ValueError(f"ticker must be a string, got {ticker!r}")
    normal = ticker.strip().upper().replace("-", "_").replace(".", "_")
    if not _TICKER_RE.fullmatch(normal):
        raise ValueError(
            f"invalid ticker {ticker!r}: expected a letter followed by letters, digits, "
            "'-', '.' or '_'"
        )
    return normal


def _is_glob(pattern: str) -> bool:
    return not _GLOB_CHARS.isdisjoint(pattern)


class _Template:
    """A template field plus the regexes that recognise its instantiations."""

    def __init__(self, field: Field) -> None:
        if field.path.count(TICKER_PLACEHOLDER) != 1:
            raise ValueError(
                f"template {field.path!r} must contain the placeholder "
                f"{TICKER_PLACEHOLDER} exactly once"
            )
        self.field = field
        segments = field.path.split(".")
        self.index = next(i for i, s in enumerate(segments) if TICKER_PLACEHOLDER in s)
        self.segment_re = self._compile(segments[self.index])
        self.path_re = self._compile(field.path)

    @staticmethod
    def _compile(text: str) -> re.Pattern[str]:
        before, after = text.split(TICKER_PLACEHOLDER)
        return re.compile(f"{re.escape(before)}(?P<ticker>{_TICKER}){re.escape(after)}")

    def instantiate(self, ticker: str) -> Field:
        return replace(
            self.field,
            path=self.field.path.replace(TICKER_PLACEHOLDER, ticker),
            semantic_type=self.field.semantic_type.replace(TICKER_PLACEHOLDER, ticker),
        )

    def resolve(self, path: str) -> Field | None:
        match = self.path_re.fullmatch(path)
        return self.instantiate(match["ticker"]) if match else None

    def pinned_ticker(self, pattern: str) -> str | None:
        """The ticker a pattern names literally at the placeholder's segment, if any."""
        segments = pattern.split(".")
        if len(segments) <= self.index or _is_glob(segments[self.index]):
            return None
        match = self.segment_re.fullmatch(segments[self.index])
        return match["ticker"] if match else None


class Schema:
    """An immutable set of concrete fields plus per-firm templates."""

    def __init__(self, fields: Iterable[Field], templates: Iterable[Field] = ()) -> None:
        by_path: dict[str, Field] = {}
        for f in fields:
            if not isinstance(f, Field):
                raise TypeError(f"schema fields must be Field instances, got {f!r}")
            if TICKER_PLACEHOLDER in f.path:
                raise ValueError(
                    f"field {f.path!r} holds {TICKER_PLACEHOLDER}; pass it as a template"
                )
            if f.path in by_path:
                raise ValueError(f"duplicate field path {f.path!r}")
            by_path[f.path] = f
        self._fields = {p: by_path[p] for p in sorted(by_path)}
        self._paths = tuple(self._fields)

        seen: set[str] = set()
        self._templates: list[_Template] = []
        for t in sorted(templates, key=lambda t: t.path):
            if t.path in seen:
                raise ValueError(f"duplicate template path {t.path!r}")
            seen.add(t.path)
            self._templates.append(_Template(t))
        self._hash: str | None = None

    def __contains__(self, path: object) -> bool:
        if not isinstance(path, str):
            return False
        return path in self._fields or any(t.path_re.fullmatch(path) for t in self._templates)

    def __len__(self) -> int:
        return len(self._fields)

    def __iter__(self) -> Iterator[Field]:
        return iter(self._fields.values())

    def __repr__(self) -> str:
        return f"Schema({len(self)} fields, {len(self._templates)} templates)"

    @property
    def paths(self) -> list[str]:
        """Concrete field paths, sorted."""
        return list(self._paths)

    @property
    def templates(self) -> list[Field]:
        """Template fields (paths holding ``<TICKER>``), sorted by path."""
        return [t.field for t in self._templates]

    def field(self, path: str) -> Field:
        """The field at ``path``: declared, or instantiated from a template for its ticker."""
        found = self._fields.get(path)
        if found is not None:
            return found
        for t in self._templates:
            resolved = t.resolve(path)
            if resolved is not None:
                return resolved
        raise UnknownFieldError(path, self._suggest(path, self._candidate_paths()))

    def project(self, *patterns: str) -> Schema:
        """The sub-schema selected by the union of ``patterns``.

        A pattern is an exact path, a prefix on segment boundaries (``country_us.macro``) or an
        fnmatch glob (``financial.*.vix``). Templates a pattern pins to one ticker
        (``firm_AAPL.earnings``) become concrete fields; templates a glob matches as written
        (``firm_*``) stay templates.
        """
        if not patterns:
            raise ValueError("project() needs at least one pattern")
        selected: dict[str, Field] = {}
        kept: dict[str, Field] = {}
        for pattern in patterns:
            matches = self._matcher(pattern)
            hits = {p: f for p, f in self._fields.items() if matches(p)}
            templates_hit = False
            for t in self._templates:
                ticker = t.pinned_ticker(pattern)
                if ticker is not None:
                    instance = t.instantiate(ticker)
                    if matches(instance.path):
                        hits[instance.path] = instance
                elif matches(t.field.path):
                    kept[t.field.path] = t.field
                    templates_hit = True
            if not hits and not templates_hit:
                candidates = self._candidate_paths() + self._prefixes()
                raise UnknownFieldError(pattern, self._suggest(pattern, candidates), True)
            selected.update(hits)
        return Schema(selected.values(), kept.values())

    def with_entities(self, tickers: Iterable[str]) -> Schema:
        """A schema where every template is instantiated as concrete fields for each ticker."""
        fields = dict(self._fields)
        for ticker in dict.fromkeys(_normalise_ticker(t) for t in tickers):
            for t in self._templates:
                instance = t.instantiate(ticker)
                fields.setdefault(instance.path, instance)
        return Schema(fields.values(), self.templates)

    def to_polars(self) -> pl.DataFrame:
        """One row per concrete field, in path order."""
        fields = list(self)
        return pl.DataFrame(
            {
                "path": list(self._paths),
                "domain": [f.domain for f in fields],
                "semantic_type": [f.semantic_type for f in fields],
                "unit": [f.unit for f in fields],
                "period": [f.period.value for f in fields],
                "period_days": [f.period.days for f in fields],
                "dimension": [f.dimension for f in fields],
                "loss_weight": [f.loss_weight for f in fields],
                "latent": [f.latent for f in fields],
            },
            schema={
                "path": pl.String,
                "domain": pl.String,
                "semantic_type": pl.String,
                "unit": pl.String,
                "period": pl.String,
                "period_days": pl.Float64,
                "dimension": pl.Int32,
                "loss_weight": pl.Float64,
                "latent": pl.Boolean,
            },
        )

    def layout_hash(self) -> str:
        """SHA-256 of a canonical JSON of the concrete fields (independent of input order)."""
        if self._hash is None:
            canonical = json.dumps([asdict(f) for f in self], sort_keys=True, separators=(",", ":"))
            self._hash = hashlib.sha256(canonical.encode()).hexdigest()
        return self._hash

    @staticmethod
    def _matcher(pattern: str) -> Callable[[str], bool]:
        if _is_glob(pattern):
            return re.compile(fnmatch.translate(pattern)).match
        prefix = pattern + "."
        return lambda path: path == pattern or path.startswith(prefix)

    def _candidate_paths(self) -> list[str]:
        return list(self._paths) + [t.field.path for t in self._templates]

    def _prefixes(self) -> list[str]:
        prefixes: set[str] = set()
        for path in self._candidate_paths():
            segments = path.split(".")
            prefixes.update(".".join(segments[:i]) for i in range(1, len(segments)))
        return sorted(prefixes)

    @staticmethod
    def _suggest(path: str, candidates: list[str]) -> list[str]:
        return difflib.get_close_matches(path, candidates, n=5, cutoff=0.6)


@functools.cache
def default_schema() -> Schema:
    """The declared catalogue of :mod:`warehouse.catalog` (built once, then cached)."""
    from warehouse.catalog import FIELDS, TEMPLATES

    return Schema(FIELDS, TEMPLATES)

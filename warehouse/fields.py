"""The field vocabulary: what one field is (`Field`), its period class and its transform.

The schema (:mod:`warehouse.schema`) indexes fields and the declared catalogue
(:mod:`warehouse.catalog`) lists them; both build on this module.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from enum import StrEnum

TICKER_PLACEHOLDER = "<TICKER>"

_SEGMENT = r"[A-Za-z][A-Za-z0-9_]*"
_PATH_RE = re.compile(rf"{_SEGMENT}(?:\.{_SEGMENT})*")


class Transform(StrEnum):
    """How a field is modelled (FRED-MD's transformation codes are the reference).

    ``level``: as observed (rates of change, spreads, diffusion indices, returns);
    ``log``: its logarithm (positive, skewed counts such as housing starts);
    ``diff``: its change since the previous observation (interest rates, unemployment);
    ``logdiff``: its log change since then (prices, indices, money stock, exchange rates).
    """

    LEVEL = "level"
    LOG = "log"
    DIFF = "diff"
    LOGDIFF = "logdiff"


class Period(StrEnum):
    """Temporal period class of a field: how slowly it moves."""

    SUB_DAILY = "sub_daily"
    DAILY = "daily"
    WEEKLY = "weekly"
    MONTHLY = "monthly"
    QUARTERLY = "quarterly"
    ANNUAL = "annual"
    MULTI_YEAR = "multi_year"

    @property
    def days(self) -> float:
        """Typical period length in days."""
        return _PERIOD_DAYS[self]


_PERIOD_DAYS: dict[Period, float] = {
    Period.SUB_DAILY: 0.25,
    Period.DAILY: 1.0,
    Period.WEEKLY: 7.0,
    Period.MONTHLY: 30.44,
    Period.QUARTERLY: 91.31,
    Period.ANNUAL: 365.25,
    Period.MULTI_YEAR: 1461.0,
}


@dataclass(frozen=True)
class Field:
    """One field of the world: its path, identity sentence, unit, period class and shape."""

    path: str
    semantic_type: str
    unit: str
    period: Period
    dimension: int = 1
    loss_weight: float = 1.0
    latent: bool = False
    transform: Transform = Transform.LEVEL
    # the plausible range of a value (inclusive): outside it is refused at ingest
    bounds: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        path = self.path
        if not isinstance(path, str) or not _PATH_RE.fullmatch(
            path.replace(TICKER_PLACEHOLDER, "T")
        ):
            raise ValueError(
                f"invalid field path {path!r}: expected dot-separated segments "
                "matching [A-Za-z][A-Za-z0-9_]*"
            )
        for attr in ("semantic_type", "unit"):
            value = getattr(self, attr)
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"field {path!r}: {attr} must be a non-empty string")
        self._coerce("period", Period)
        if isinstance(self.dimension, bool) or not isinstance(self.dimension, int):
            raise ValueError(f"field {path!r}: dimension must be an int, got {self.dimension!r}")
        if self.dimension < 1:
            raise ValueError(f"field {path!r}: dimension must be >= 1, got {self.dimension}")
        weight = self.loss_weight
        if (
            isinstance(weight, bool)
            or not isinstance(weight, int | float)
            or not math.isfinite(weight)
            or weight <= 0
        ):
            raise ValueError(
                f"field {path!r}: loss_weight must be a finite number > 0, got {weight!r}"
            )
        object.__setattr__(self, "loss_weight", float(weight))
        self._coerce("transform", Transform)
        if self.transform != Transform.LEVEL and (self.latent or self.dimension > 1):
            raise ValueError(f"field {path!r}: latent and vector fields are modelled as levels")
        if self.bounds is not None:
            lo, hi = self.bounds
            if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
                raise ValueError(
                    f"field {path!r}: bounds must be finite with lo < hi, got {self.bounds}"
                )
        if not isinstance(self.latent, bool):
            raise ValueError(f"field {path!r}: latent must be a bool, got {self.latent!r}")
        if self.latent and self.dimension > 1:
            raise ValueError(
                f"field {path!r}: a latent field must be scalar, got dimension {self.dimension}"
            )

    def _coerce(self, attr: str, kind: type[StrEnum]) -> None:
        """Store `attr` as a member of `kind`, or fail naming the field and the choices."""
        value = getattr(self, attr)
        try:
            object.__setattr__(self, attr, kind(value))
        except ValueError:
            raise ValueError(
                f"field {self.path!r}: unknown {attr} {value!r}; expected one of {', '.join(kind)}"
            ) from None

    @property
    def domain(self) -> str:
        """The first path segment, e.g. ``country_us`` or ``firm_AAPL``."""
        return self.path.split(".", 1)[0]

    @property
    def is_vector(self) -> bool:
        """True when the field holds more than one number per observation."""
        return self.dimension > 1

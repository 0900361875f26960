"""Naive-UTC time: the one clock every layer reads, and conversions to its timestamps.

Call sites read the clock as ``clock.utc_now()`` (the module attribute), so a test can
freeze time everywhere with one ``monkeypatch.setattr(clock, "utc_now", ...)``.
"""

from __future__ import annotations

import datetime as dt


def utc_now() -> dt.datetime:
    """The current time as a naive-UTC datetime, to the second."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)


def as_timestamp(value: dt.datetime | dt.date | str) -> dt.datetime:
    """A naive-UTC datetime from a datetime (any zone), a date or an ISO string."""
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        return value
    if isinstance(value, dt.date):
        return dt.datetime(value.year, value.month, value.day)
    return as_timestamp(dt.datetime.fromisoformat(value))

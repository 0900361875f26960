"""`warehouse.config`: a settings dataclass as plain config values, and back."""

from __future__ import annotations

from pathlib import Path

import pytest

from canvas.settings import CanvasSettings
from ingest.base import RetryPolicy
from ingest.sources import SourceSettings
from warehouse.config import config_fields, from_plain


def test_plain_values_come_back_as_the_settings_types(tmp_path: Path):
    plain = {
        "mode": "recorded",
        "recorded_dir": str(tmp_path),
        "tickers": ["AAPL", "MSFT"],
        "policy": {"attempts": 2},
    }
    assert from_plain(SourceSettings, plain) == SourceSettings(
        mode="recorded",
        recorded_dir=tmp_path,
        tickers=("AAPL", "MSFT"),
        policy=RetryPolicy(attempts=2),
    )
    fields = config_fields(CanvasSettings, lambda cls, nested: cls)
    assert fields["fields"] == (list[str], [])  # a tuple is a list in config
    assert fields["start"] == (str | None, None)


def test_an_unknown_name_is_an_error_naming_the_known_ones():
    with pytest.raises(ValueError, match=r"CanvasSettings: unknown \['width'\]; expected one of"):
        from_plain(CanvasSettings, {"T": 4, "width": 64})

"""FRED over HTTP: fredapi with a timeout, status-aware errors, paging and no key in errors.

fredapi builds the URLs and parses the XML; :class:`FredClient` replaces its one network
call so it has a timeout, knows HTTP 429/5xx (retried: :data:`RETRYABLE`) from 400 (not
retried), pages long answers and never lets the API key (fredapi puts it in the URL)
reach an error, a log line or the result.
"""

from __future__ import annotations

import datetime as dt
import http.client
import os
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET
from urllib.parse import quote_plus, urlencode

import numpy as np
import pandas as pd
import polars as pl
from fredapi import Fred

from ingest.base import RateLimitedError, SourceError, redact
from ingest.fred_series import FredSeries
from ingest.fred_transforms import empty_raw

__all__ = [
    "API_KEY_HELP",
    "RETRYABLE",
    "FredClient",
    "KeyRejected",
    "ServerError",
    "TransportError",
    "raw_latest",
    "raw_vintages",
    "resolve_key",
]

API_KEY_HELP = (
    "get a free key at https://fred.stlouisfed.org/docs/api/api_key.html and pass "
    "api_key=... or set the environment variable FRED_API_KEY"
)


class TransportError(SourceError):
    """Timeout or connection failure: retried."""


class ServerError(SourceError):
    """HTTP 5xx: retried."""


class KeyRejected(SourceError):
    """FRED refused the API key: nothing will work."""


def _error_message(body: bytes) -> str:
    """The ``message`` of a FRED XML error body (``<error code=".." message=".."/>``)."""
    try:
        return " ".join((ET.fromstring(body).get("message") or "").split())
    except ET.ParseError:
        return ""


class FredClient(Fred):
    """fredapi's ``Fred`` with its one network call (``__fetch_data``) replaced.

    fredapi builds the URLs and parses the XML; this class does the HTTP: with a timeout,
    typed errors by status, paging when FRED holds more rows than one answer carries, and
    the key redacted from every message.
    """

    def __init__(self, api_key: str, *, timeout: float, root_url: str | None = None) -> None:
        super().__init__(api_key=api_key)
        if root_url:
            if not root_url.startswith(("http://", "https://")):
                raise ValueError(f"root_url must be an http(s) URL, got {root_url!r}")
            self.root_url = root_url.rstrip("/")
        self.timeout = timeout
        self.secrets = (api_key, quote_plus(api_key))

    # fredapi calls self.__fetch_data, name-mangled to _Fred__fetch_data: this overrides it.
    def _Fred__fetch_data(self, url: str) -> ET.Element:
        root = self._get(url)
        total = int(root.get("count") or 0)
        while len(root) < total:
            page = self._get(f"{url}&offset={len(root)}")
            if not len(page):
                break
            root.extend(list(page))
        return root

    def _get(self, url: str) -> ET.Element:
        request = urllib.request.Request(
            f"{url}&{urlencode({'api_key': self.api_key})}", headers={"User-Agent": "guwm"}
        )
        error: SourceError | None = None
        body = b""
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                body = response.read()
        except urllib.error.HTTPError as err:
            error = self._http_error(err)
        except (OSError, http.client.HTTPException) as err:
            error = TransportError(self._transport_message(err))
        if error is not None:  # raised here, outside `except`: no context holding the URL
            raise error
        try:
            return ET.fromstring(body)
        except ET.ParseError as err:
            raise SourceError(f"FRED answered with something that is not XML ({err})") from None

    def _http_error(self, err: urllib.error.HTTPError) -> SourceError:
        try:
            body = err.read(65536)
        except (OSError, http.client.HTTPException):
            body = b""
        finally:
            err.close()
        # redact before cutting, so no piece of the key survives the cut
        snippet = redact(" ".join(body.decode("utf-8", "replace").split()), self.secrets)[:200]
        message = _error_message(body) or ": ".join(filter(None, [str(err.reason), snippet]))
        text = redact(f"HTTP {err.code}: {message}", self.secrets)
        if err.code == 429:
            return RateLimitedError(text)
        if err.code >= 500:
            return ServerError(text)
        if "api_key" in message.lower() or err.code in (401, 403):
            return KeyRejected(text)
        return SourceError(text)  # 400/404: a bad request or series id, not worth retrying

    def _transport_message(self, err: BaseException) -> str:
        reason = getattr(err, "reason", err)
        if isinstance(reason, TimeoutError) or isinstance(err, TimeoutError):
            return f"timed out after {self.timeout:g}s"
        return redact(f"connection failed: {type(reason).__name__}: {reason}", self.secrets)


def raw_latest(
    s: FredSeries, start: dt.date | None, end: dt.date | None, client: FredClient
) -> pl.DataFrame:
    """Latest values of one series as raw rows."""
    begin = start - dt.timedelta(days=s.transform.lookback_days) if start else None
    values = client.get_series(s.series_id, observation_start=begin, observation_end=end)
    if values.empty:
        return empty_raw()
    return pl.DataFrame(
        {
            "date": pl.Series(values.index.to_numpy()).cast(pl.Date),
            "value": values.to_numpy(dtype=float),
            "realtime_start": pl.Series([None] * len(values), dtype=pl.Date),
        }
    )


def _as_float(column: pd.Series) -> np.ndarray:
    """Floats from fredapi's object column; its missing values may come back as NaN or NaT."""
    as_objects = column.astype(object).where(column.notna(), None)
    return pd.to_numeric(as_objects, errors="coerce").astype(float).to_numpy()


def raw_vintages(s: FredSeries, client: FredClient) -> pl.DataFrame:
    """Every ALFRED vintage of one series as raw rows (realtime_start = vintage date)."""
    releases = client.get_series_all_releases(s.series_id)
    if releases.empty:
        return empty_raw()
    return pl.DataFrame(
        {
            "date": pl.Series(pd.to_datetime(releases["date"]).to_numpy()).cast(pl.Date),
            "value": _as_float(releases["value"]),
            "realtime_start": pl.Series(pd.to_datetime(releases["realtime_start"]).to_numpy()).cast(
                pl.Date
            ),
        }
    )


def resolve_key(api_key: str | None) -> str:
    key = api_key or os.environ.get("FRED_API_KEY")
    if not key:
        raise ValueError(f"FRED needs an API key: {API_KEY_HELP}")
    return key


RETRYABLE = (RateLimitedError, ServerError, TransportError)

"""What every adapter shares: the fetch result, retries with backoff, secret redaction."""

from __future__ import annotations

import logging
import random
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TypeVar

import polars as pl

from warehouse.validation import LONG_SCHEMA

log = logging.getLogger("guwm.ingest")
T = TypeVar("T")


def empty_long_frame() -> pl.DataFrame:
    """A long-format frame with no rows."""
    return pl.DataFrame(schema=LONG_SCHEMA)


class SourceError(RuntimeError):
    """A source could not deliver: names the source and the item, never a secret.
    `failures` holds each failed item's reason when the error stands for several."""

    def __init__(self, message: str, failures: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.failures = dict(failures or {})


class RateLimitedError(SourceError):
    """The source said 'too many requests'; worth retrying after a pause."""


@dataclass
class FetchResult:
    """Long-format rows fetched from one source, plus the items that failed and why."""

    source: str
    data: pl.DataFrame
    failures: dict[str, str] = field(default_factory=dict)

    def raise_if_nothing(self) -> FetchResult:
        """Raise SourceError when every item failed (one line: how many, the commonest
        cause); every failed item is logged either way."""
        for item, reason in sorted(self.failures.items()):
            log.warning("source '%s': %s failed: %s", self.source, item, reason)
        if self.data.is_empty() and self.failures:
            raise SourceError(self.failure_summary(), self.failures)
        return self

    def failure_summary(self) -> str:
        """One line: each failed item and why when there are a few; else "source 'fred':
        every request failed (90 items); commonest cause (90 of 90), e.g. CPIAUCSL: …"."""
        n = len(self.failures)
        if n <= LISTED_FAILURES:  # a few: each one
            detail = "; ".join(f"{k}: {_short(v)}" for k, v in self.failures.items())
            return f"source '{self.source}': every request failed ({detail})"
        groups: dict[str, list[str]] = {}
        for item, reason in self.failures.items():
            groups.setdefault(_cause(item, reason), []).append(item)
        # the largest group of items that were tried (those skipped once the source was
        # found unreachable say nothing about why)
        items = max(
            groups.values(),
            key=lambda g: (not _skipped(self.failures[g[0]]), len(g)),
        )
        skipped = sum(map(_skipped, self.failures.values()))
        tried = not _skipped(self.failures[items[0]])
        return (
            f"source '{self.source}': every request failed ({n} items"
            + (f", {skipped} {NOT_ATTEMPTED}" if skipped and tried else "")
            + f"); commonest cause ({len(items)} of {n}), e.g. {items[0]}: "
            f"{_short(self.failures[items[0]])} (each item's reason is logged)"
        )


def _cause(item: str, reason: str) -> str:
    """A failure reason without what is particular to its item, so alike causes group."""
    text = reason.replace(item, "…")
    return re.sub(r"(?<=[?&])[^=&\s]+=[^&\s)'\"]*", "…", text)  # query parameters


def _skipped(reason: str) -> bool:
    return reason.startswith(NOT_ATTEMPTED)


def _short(reason: str) -> str:
    return reason if len(reason) <= CAUSE_CHARS else reason[: CAUSE_CHARS - 1] + "…"


CAUSE_CHARS = 240  # a reason is shown within one line
NOT_ATTEMPTED = "not attempted"  # an item skipped once its source proved unreachable
LISTED_FAILURES = 5  # up to this many failed items are each named in the error


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try: attempts, exponential backoff with jitter, per-request timeout."""

    attempts: int = 4
    base_delay: float = 1.0
    max_delay: float = 30.0
    timeout: float = 30.0
    rate_limit_delay: float = 20.0

    def delay(
        self, attempt: int, *, rate_limited: bool = False, retry_after: float | None = None
    ) -> float:
        """Seconds to wait before retry number `attempt` (1-based); a server's
        `retry_after` (seconds) replaces the backoff, capped at max_delay."""
        if retry_after is not None:
            return min(self.max_delay, retry_after)
        base = self.rate_limit_delay if rate_limited else self.base_delay
        return min(self.max_delay, base * 2 ** (attempt - 1)) * (0.5 + random.random() / 2)


def call_with_retries(
    fn: Callable[[], T],
    *,
    policy: RetryPolicy,
    what: str,
    retry_on: tuple[type[BaseException], ...],
    secrets: Iterable[str] = (),
    sleep: Callable[[float], None] = time.sleep,
    give_up: Callable[[int, BaseException], BaseException] | None = None,
) -> T:
    """Call `fn`, retrying on `retry_on` with backoff; the last error becomes a SourceError,
    or `give_up(attempts, error)` when given.

    Error texts are redacted of `secrets` (API keys) before they are logged or raised. An
    error with a `retry_after` attribute (seconds, as a server's Retry-After asks) waits
    that long instead of the backoff.
    """
    secrets = tuple(secrets)
    for attempt in range(1, policy.attempts + 1):
        try:
            return fn()
        except retry_on as err:
            message = redact(f"{type(err).__name__}: {err}", secrets)
            if attempt == policy.attempts:
                if give_up is not None:
                    raise give_up(attempt, err) from None
                raise SourceError(f"{what}: gave up after {attempt} attempts: {message}") from None
            wait = policy.delay(
                attempt,
                rate_limited=isinstance(err, RateLimitedError),
                retry_after=getattr(err, "retry_after", None),
            )
            log.info("%s: attempt %d failed (%s); retrying in %.1fs", what, attempt, message, wait)
            sleep(wait)
    raise AssertionError("unreachable")


def redact(text: str, secrets: Iterable[str]) -> str:
    """`text` with every non-empty secret replaced by '***'."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text

"""A small client for OpenAI- and Anthropic-compatible chat endpoints, asking for strict JSON.

    provider = LLMProvider.from_env()          # None unless GUWM_LLM_PROVIDER is set
    provider = LLMProvider("openai", model="gpt-4o-mini", api_key="...")
    answer = provider.ask_json(system, prompt, schema, parse=my_validator)

* ``openai``: ``POST {base_url}/chat/completions`` with ``response_format`` of type
  ``json_schema`` (strict); the key goes in ``Authorization: Bearer``.
* ``anthropic``: ``POST {base_url}/v1/messages`` with one forced tool whose
  ``input_schema`` is the schema; the key goes in ``x-api-key`` with ``anthropic-version``.

Requests have a timeout and are retried with exponential backoff on HTTP 429, 5xx,
timeouts and connection errors (honouring ``Retry-After``). The API key is sent only in
its header: it never appears in a message, log line or ``repr`` (every error text is
redacted). Environment: ``GUWM_LLM_PROVIDER`` (openai | anthropic; unset: no provider),
``GUWM_LLM_MODEL`` (required with a provider), ``GUWM_LLM_BASE_URL`` (default: the
vendor's API), ``GUWM_LLM_API_KEY`` (else ``OPENAI_API_KEY`` / ``ANTHROPIC_API_KEY``),
``GUWM_LLM_TIMEOUT`` (seconds, default 120).
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import re
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ingest.base import RetryPolicy, call_with_retries, redact
from training.dag import CurriculumError

log = logging.getLogger("guwm.llm")
T = TypeVar("T")

KINDS = ("openai", "anthropic")
DEFAULT_BASE_URLS = {
    "openai": "https://api.openai.com/v1",
    "anthropic": "https://api.anthropic.com",
}
KEY_VARIABLES = {"openai": "OPENAI_API_KEY", "anthropic": "ANTHROPIC_API_KEY"}
RETRY_STATUS = frozenset({408, 409, 429})  # plus every 5xx
TOOL = "submit"
SNIPPET = 300


class LLMError(RuntimeError):
    """The endpoint could not be reached or refused the request; never holds the API key."""


class TransientError(LLMError):
    """A failure worth retrying (HTTP 408, 409, 429, 5xx, a timeout, a lost connection);
    `retry_after` is the server's Retry-After in seconds, if it sent one."""

    def __init__(self, problem: str, retry_after: float | None = None) -> None:
        super().__init__(problem)
        self.retry_after = retry_after


@dataclass(frozen=True)
class _Reply:
    """One answer: its raw text, the parsed JSON when the API delivered it parsed, and
    the assistant turn to send back in a repair request."""

    text: str
    data: Any
    turn: dict[str, Any]
    tool_use_id: str | None = None


@dataclass(frozen=True)
class _Failure:
    """A request that failed: why (redacted), whether to retry, the server's Retry-After."""

    problem: str
    retry: bool
    retry_after: float | None = None


@dataclass(frozen=True)
class LLMProvider:
    """An OpenAI- or Anthropic-compatible endpoint and model (see the module doc)."""

    kind: str
    model: str
    base_url: str | None = None
    api_key: str | None = field(default=None, repr=False)
    timeout: float = 120.0
    attempts: int = 3
    backoff: float = 1.0
    max_backoff: float = 30.0
    max_tokens: int = 8192
    anthropic_version: str = "2023-06-01"

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise LLMError(f"LLM provider must be one of {', '.join(KINDS)}, got {self.kind!r}")
        if not self.model or not self.model.strip():
            raise LLMError(f"the {self.kind} provider needs a model (GUWM_LLM_MODEL)")
        url = (self.base_url or DEFAULT_BASE_URLS[self.kind]).rstrip("/")
        if self.kind == "anthropic":
            url = url.removesuffix("/v1")  # requests go to {base_url}/v1/messages
        if not re.match(r"^https?://[^\s/]+", url):
            raise LLMError(f"LLM base_url must be an http(s) URL, got {url!r}")
        object.__setattr__(self, "base_url", url)
        if self.timeout <= 0 or self.attempts < 1 or self.backoff < 0:
            raise LLMError("LLM timeout must be > 0, attempts >= 1 and backoff >= 0")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> LLMProvider | None:
        """The provider the environment configures, or None when GUWM_LLM_PROVIDER is unset."""
        env = os.environ if environ is None else environ
        kind = env.get("GUWM_LLM_PROVIDER", "").strip().lower()
        if not kind:
            return None
        if kind not in KINDS:
            raise LLMError(f"GUWM_LLM_PROVIDER must be one of {', '.join(KINDS)}, got {kind!r}")
        model = env.get("GUWM_LLM_MODEL", "").strip()
        if not model:
            raise LLMError(f"GUWM_LLM_PROVIDER={kind} needs GUWM_LLM_MODEL (the model name)")
        timeout = env.get("GUWM_LLM_TIMEOUT", "").strip()
        try:
            seconds = float(timeout) if timeout else cls.timeout
        except ValueError:
            raise LLMError(
                f"GUWM_LLM_TIMEOUT must be a number of seconds, got {timeout!r}"
            ) from None
        return cls(
            kind=kind,
            model=model,
            base_url=env.get("GUWM_LLM_BASE_URL", "").strip() or None,
            api_key=env.get("GUWM_LLM_API_KEY") or env.get(KEY_VARIABLES[kind]) or None,
            timeout=seconds,
        )

    @property
    def name(self) -> str:
        """``llm:<model>``, as recorded in a Curriculum."""
        return f"llm:{self.model}"

    @property
    def url(self) -> str:
        """The endpoint requests go to."""
        path = "/chat/completions" if self.kind == "openai" else "/v1/messages"
        return f"{self.base_url}{path}"

    # -- asking ------------------------------------------------------------------------

    def ask_json(
        self,
        system: str,
        prompt: str,
        schema: Mapping[str, Any],
        parse: Callable[[Any], T],
        *,
        name: str = "answer",
        repairs: int = 1,
    ) -> T:
        """Ask for JSON matching `schema` and return ``parse(answer)``.

        `parse` raises CurriculumError listing what is wrong; the model then gets up to
        `repairs` follow-up requests holding those errors. Raises CurriculumError (the
        errors and the start of the last answer) when no answer passes, LLMError when the
        endpoint fails.
        """
        turns: list[dict[str, Any]] = [{"role": "user", "content": prompt}]
        for attempt in range(repairs + 1):
            reply = self._complete(system, turns, schema, name)
            try:
                return parse(_decode(reply))
            except CurriculumError as error:
                problems = self._redact(str(error))
            if attempt == repairs:
                raise CurriculumError(
                    f"{self.name} gave no valid {name} after {repairs} repair request(s): "
                    f"{_snippet(problems, 2000)}; its last answer began: "
                    f"{_snippet(self._redact(reply.text))!r}"
                )
            log.info("%s: the %s is invalid, asking for a repair: %s", self.name, name, problems)
            turns += [reply.turn, self._repair_turn(reply, problems, name)]
        raise AssertionError("unreachable")

    def _repair_turn(self, reply: _Reply, problems: str, name: str) -> dict[str, Any]:
        text = (
            f"Your {name} is invalid:\n{problems}\n"
            f"Answer again with the complete corrected {name}, as JSON matching the schema."
        )
        if reply.tool_use_id is None:
            return {"role": "user", "content": text}
        result = {"type": "tool_result", "tool_use_id": reply.tool_use_id, "is_error": True}
        return {"role": "user", "content": [{**result, "content": text}]}

    def _complete(
        self, system: str, turns: list[dict[str, Any]], schema: Mapping[str, Any], name: str
    ) -> _Reply:
        if self.kind == "openai":
            body = {
                "model": self.model,
                "messages": [{"role": "system", "content": system}, *turns],
                "response_format": {
                    "type": "json_schema",
                    "json_schema": {"name": name, "strict": True, "schema": dict(schema)},
                },
            }
            return _openai_reply(self._post(body))
        body = {
            "model": self.model,
            "max_tokens": self.max_tokens,
            "system": system,
            "messages": turns,
            "tools": [
                {"name": TOOL, "description": f"Submit the {name}.", "input_schema": dict(schema)}
            ],
            "tool_choice": {"type": "tool", "name": TOOL},
        }
        return _anthropic_reply(self._post(body))

    # -- HTTP --------------------------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        headers = {"content-type": "application/json", "user-agent": "guwm"}
        if self.kind == "anthropic":
            headers["anthropic-version"] = self.anthropic_version
            if self.api_key:
                headers["x-api-key"] = self.api_key
        elif self.api_key:
            headers["authorization"] = f"Bearer {self.api_key}"
        return headers

    def _post(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """POST `body` as JSON, retrying transient failures; the decoded JSON answer."""
        data = json.dumps(body).encode()
        what = f"{self.kind} request to {self.url} ({self.model})"

        def attempt() -> dict[str, Any]:
            outcome = self._attempt(data)
            if not isinstance(outcome, _Failure):
                return outcome
            if outcome.retry:
                raise TransientError(outcome.problem, outcome.retry_after)
            raise LLMError(self._redact(f"{what}: {outcome.problem}"))

        return call_with_retries(
            attempt,
            policy=RetryPolicy(
                attempts=self.attempts, base_delay=self.backoff, max_delay=self.max_backoff
            ),
            what=what,
            retry_on=(TransientError,),
            secrets=[self.api_key or ""],
            give_up=lambda attempts, err: LLMError(
                self._redact(f"{what}: gave up after {attempts} attempt(s): {err}")
            ),
        )

    def _attempt(self, data: bytes) -> dict[str, Any] | _Failure:
        """One request: the decoded answer, or what went wrong (redacted)."""
        request = urllib.request.Request(self.url, data, self._headers(), method="POST")
        failure: _Failure | None = None
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                raw = response.read()
        except urllib.error.HTTPError as err:
            transient = err.code >= 500 or err.code in RETRY_STATUS
            detail = self._error_detail(err)
            failure = _Failure(
                f"HTTP {err.code}: {detail}", transient, _seconds(err.headers.get("retry-after"))
            )
        except (OSError, http.client.HTTPException) as err:
            failure = _Failure(self._transport_problem(err), retry=True)
        if failure is not None:  # returned outside `except`: no context holding the request
            return failure
        try:
            answer = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError):
            text = self._redact(raw.decode("utf-8", "replace"))
            return _Failure(f"the answer is not JSON: {_snippet(text)!r}", retry=False)
        if not isinstance(answer, dict):
            return _Failure("the answer is not a JSON object", retry=False)
        return answer

    def _error_detail(self, err: urllib.error.HTTPError) -> str:
        """The error message of an HTTP error answer, redacted before it is cut."""
        try:
            body = err.read(65536).decode("utf-8", "replace")
        except (OSError, http.client.HTTPException):
            body = ""
        finally:
            err.close()
        try:
            message = str(json.loads(body)["error"]["message"])
        except (ValueError, KeyError, TypeError):
            message = " ".join(body.split()) or str(err.reason)
        return _snippet(self._redact(message))

    def _transport_problem(self, err: BaseException) -> str:
        reason = getattr(err, "reason", err)
        if isinstance(reason, TimeoutError) or isinstance(err, TimeoutError):
            return f"timed out after {self.timeout:g}s"
        return self._redact(f"connection failed: {type(reason).__name__}: {reason}")

    def _redact(self, text: str) -> str:
        return redact(text, [self.api_key or ""])


def _openai_reply(answer: dict[str, Any]) -> _Reply:
    try:
        message = answer["choices"][0]["message"]
        text = message.get("content") or message.get("refusal") or ""
    except (KeyError, IndexError, TypeError, AttributeError):
        raise LLMError(f"unexpected chat/completions answer (keys {sorted(answer)})") from None
    text = text if isinstance(text, str) else json.dumps(text)
    return _Reply(text=text, data=None, turn={"role": "assistant", "content": text})


def _anthropic_reply(answer: dict[str, Any]) -> _Reply:
    blocks = answer.get("content")
    if not isinstance(blocks, list):
        raise LLMError(f"unexpected messages answer (keys {sorted(answer)})")
    blocks = [b for b in blocks if isinstance(b, dict)]
    tool = next((b for b in blocks if b.get("type") == "tool_use"), None)
    if tool is not None:
        data = tool.get("input")
        turn = {"role": "assistant", "content": blocks}
        return _Reply(json.dumps(data), data, turn, tool_use_id=tool.get("id"))
    text = "".join(str(b.get("text", "")) for b in blocks)
    return _Reply(text=text, data=None, turn={"role": "assistant", "content": text or "(empty)"})


def _decode(reply: _Reply) -> Any:
    """The reply's JSON: parsed by the API (tool input), else from its text (fences removed)."""
    if reply.data is not None:
        return reply.data
    text = re.sub(r"^\s*```(?:json)?\s*|\s*```\s*$", "", reply.text)
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise CurriculumError(f"the answer is not valid JSON ({error})") from None


def _seconds(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None


def _snippet(text: str, limit: int = SNIPPET) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


__all__ = ["LLMError", "LLMProvider"]

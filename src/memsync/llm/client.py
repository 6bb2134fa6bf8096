"""A JSON-answering chat model over any OpenAI-compatible chat-completions endpoint.

`OpenAIChat` talks to Ollama, vLLM, OpenAI or a private proxy with one POST per call and
asks for structured output (`response_format` json_schema, strict). Servers that predate
json_schema get `json_object` instead, with the schema spelled out in the system message.
`ask_validated` is the one place that retries: a model's answer that is not JSON or does
not validate is sent back once with the reason, and a second failure is an `LLMError`.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import Any, Literal, Protocol, TypeVar

import httpx

from memsync.errors import LLMError, UsageError

__all__ = [
    "ChatModel",
    "ChatTurn",
    "LLMSettings",
    "MalformedOutput",
    "OpenAIChat",
    "ask_validated",
    "parse_json_answer",
]

T = TypeVar("T")

_RAW_LIMIT = 2000  # enough of a bad answer to show the model (and a log) what went wrong
_EXCERPT = 200
_RETRY_AFTER_CAP = 30.0
_FENCE = re.compile(r"```(?:json|JSON)?\s*\n?(.*?)```", re.DOTALL)
# Reasoning models served through Ollama/vLLM put their thinking before the answer.
_THINK = re.compile(r"<think>.*?</think>", re.DOTALL)


class MalformedOutput(LLMError):
    """The model's answer was not the JSON asked for; `raw` holds (the start of) it."""

    def __init__(self, message: str, *, raw: str, reason: str) -> None:
        super().__init__(message)
        self.raw = raw[:_RAW_LIMIT]
        self.reason = reason


@dataclass(frozen=True)
class LLMSettings:
    """Where and how to reach a chat-completions endpoint.

    Attributes:
        base_url: the API root, e.g. `http://localhost:11434/v1`; requests go to
            `{base_url}/chat/completions`.
        model: the model name the server knows ("gpt-4o-mini", "llama3.1:8b").
        api_key: sent as a bearer token when set; never printed.
        timeout: seconds to wait for each HTTP request.
        temperature: sampling temperature; 0 keeps extraction repeatable.
        max_attempts_on_429: requests made while the server keeps rate-limiting.
    """

    base_url: str
    model: str
    api_key: str | None = field(default=None, repr=False)
    timeout: float = 60.0
    temperature: float = 0.0
    max_attempts_on_429: int = 3

    def __post_init__(self) -> None:
        if not self.base_url.startswith(("http://", "https://")):
            raise UsageError(f"LLM base URL must start with http:// or https://: {self.base_url}")
        if not self.model.strip():
            raise UsageError("LLM model name is empty")
        if self.timeout <= 0:
            raise UsageError(f"LLM timeout must be positive, got {self.timeout}")
        if self.max_attempts_on_429 < 1:
            raise UsageError(
                f"max_attempts_on_429 must be at least 1, got {self.max_attempts_on_429}"
            )

    @property
    def url(self) -> str:
        """The chat-completions URL."""
        return f"{self.base_url.rstrip('/')}/chat/completions"


@dataclass(frozen=True)
class ChatTurn:
    """A message after the first user message: a previous answer or a follow-up."""

    role: Literal["user", "assistant"]
    content: str


class ChatModel(Protocol):
    """A chat model that answers with one JSON value.

    Attributes:
        name: identifies the model in provenance and errors, e.g. "llm:gpt-4o-mini".
    """

    name: str

    def complete_json(
        self,
        system: str,
        user: str,
        *,
        schema_name: str,
        schema: dict[str, Any],
        history: Sequence[ChatTurn] = (),
    ) -> Any:
        """The parsed JSON the model answers to `system` + `user` (+ `history`).

        Raises `MalformedOutput` when the answer is not JSON and `LLMError` when the
        endpoint fails.
        """
        ...


class OpenAIChat:
    """`ChatModel` over HTTP. Use as a context manager, or call `close()`.

    Args:
        settings: the endpoint, model and limits.
        client: an `httpx.Client` to send requests with (left open by `close()`).
        sleep: waits between rate-limited attempts.
    """

    def __init__(
        self,
        settings: LLMSettings,
        *,
        client: httpx.Client | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings = settings
        self.name = f"llm:{settings.model}"
        self._client = client if client is not None else httpx.Client()
        self._owns_client = client is None
        self._sleep = sleep
        # Cleared once the server rejects json_schema, so later calls skip the rejection.
        self.json_schema_supported = True

    def complete_json(
        self,
        system: str,
        user: str,
        *,
        schema_name: str,
        schema: dict[str, Any],
        history: Sequence[ChatTurn] = (),
    ) -> Any:
        """See `ChatModel.complete_json`."""
        turns = [{"role": t.role, "content": t.content} for t in history]
        if self.json_schema_supported:
            body = self._body(system, user, turns, _schema_format(schema_name, schema))
            response = self._post(body)
            if not _rejects_json_schema(response):
                return parse_json_answer(self._content(response), self.name)
            self.json_schema_supported = False
        spelled_out = (
            f"{system}\n\nAnswer with one JSON object that follows this JSON schema:\n"
            f"{json.dumps(schema)}"
        )
        response = self._post(self._body(spelled_out, user, turns, {"type": "json_object"}))
        if not response.is_success:
            raise self._http_error(response)
        return parse_json_answer(self._content(response), self.name)

    def close(self) -> None:
        """Release the HTTP connection pool (unless the client was passed in)."""
        if self._owns_client:
            self._client.close()

    def __enter__(self) -> OpenAIChat:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _body(
        self, system: str, user: str, turns: list[dict[str, str]], fmt: dict[str, Any]
    ) -> dict[str, Any]:
        messages = [{"role": "system", "content": system}, {"role": "user", "content": user}]
        return {
            "model": self.settings.model,
            "messages": messages + turns,
            "temperature": self.settings.temperature,
            "response_format": fmt,
        }

    def _post(self, body: dict[str, Any]) -> httpx.Response:
        """One successful (or json_schema-rejecting) response, rate limits waited out."""
        s = self.settings
        headers = {"Authorization": f"Bearer {s.api_key}"} if s.api_key else {}
        for attempt in range(1, s.max_attempts_on_429 + 1):
            try:
                response = self._client.post(s.url, json=body, headers=headers, timeout=s.timeout)
            except httpx.TimeoutException:
                raise LLMError(f"{s.url} did not answer within {s.timeout:g} s") from None
            except httpx.ConnectError as e:
                raise LLMError(f"cannot connect to {s.url}: {e}") from None
            except httpx.HTTPError as e:
                raise LLMError(f"request to {s.url} failed: {e}") from None
            if response.status_code == 429:
                if attempt < s.max_attempts_on_429:
                    self._sleep(_retry_after(response, attempt))
                continue
            if response.is_success or _rejects_json_schema(response):
                return response
            raise self._http_error(response)
        raise LLMError(
            f"{s.url} rate limited every request ({s.max_attempts_on_429} attempts, HTTP 429)"
        )

    def _http_error(self, response: httpx.Response) -> LLMError:
        s = self.settings
        code = response.status_code
        if code in (401, 403):
            if s.api_key:
                return LLMError(f"{s.url} refused the API key (HTTP {code})")
            return LLMError(f"{s.url} requires an API key (HTTP {code}); none is set")
        excerpt = " ".join(response.text.split())[:_EXCERPT]
        if s.api_key:  # some servers echo what they were sent
            excerpt = excerpt.replace(s.api_key, "***")
        return LLMError(f"{s.url} answered HTTP {code}: {excerpt or '(empty body)'}")

    def _content(self, response: httpx.Response) -> str:
        try:
            payload = response.json()
            message = payload["choices"][0]["message"]
        except (ValueError, KeyError, IndexError, TypeError):
            raise LLMError(
                f"{self.settings.url} did not answer like a chat-completions endpoint: "
                f"{response.text[:_EXCERPT]!r}"
            ) from None
        content = message.get("content") if isinstance(message, dict) else None
        if not isinstance(content, str) or not content.strip():
            refusal = message.get("refusal") if isinstance(message, dict) else None
            reason = f"it refused: {refusal}" if refusal else "the answer was empty"
            raise MalformedOutput(f"{self.name}: {reason}", raw=str(refusal or ""), reason=reason)
        return content


def parse_json_answer(text: str, who: str = "the model") -> Any:
    """The JSON value in a model's answer, code fences and <think> blocks removed."""
    body = _THINK.sub("", text).strip()
    fenced = _FENCE.search(body)
    if fenced:
        body = fenced.group(1).strip()
    try:
        return json.loads(body)
    except json.JSONDecodeError as e:
        reason = f"it is not valid JSON ({e.msg} at line {e.lineno} column {e.colno})"
        raise MalformedOutput(
            f"{who} answered with text that is not JSON: {text[:_EXCERPT]!r}",
            raw=text,
            reason=reason,
        ) from None


def ask_validated(
    model: ChatModel,
    system: str,
    user: str,
    schema_name: str,
    schema: dict[str, Any],
    validate: Callable[[Any], T],
) -> T:
    """`validate(answer)` for the model's answer, asking once more if it is unusable.

    `validate` raises `ValueError`, `KeyError` or `TypeError` for an answer of the wrong
    shape. On a first failure the bad answer and the reason go back to the model; a second
    failure raises `LLMError` naming what was wrong.
    """
    history: list[ChatTurn] = []
    for attempt in (1, 2):
        answer: Any = None
        try:
            answer = model.complete_json(
                system, user, schema_name=schema_name, schema=schema, history=history
            )
            return validate(answer)
        except MalformedOutput as e:
            reason, raw = e.reason, e.raw
        except (ValueError, KeyError, TypeError) as e:
            reason = _describe(e)
            raw = json.dumps(answer, ensure_ascii=False)[:_RAW_LIMIT]
        if attempt == 2:
            raise LLMError(f"{model.name} gave an invalid {schema_name} answer twice: {reason}")
        history = [
            ChatTurn("assistant", raw),
            ChatTurn(
                "user",
                f"Your answer was not valid: {reason}. Answer again with JSON only, "
                "following the schema exactly.",
            ),
        ]
    raise AssertionError("unreachable")  # pragma: no cover


def _describe(e: Exception) -> str:
    if isinstance(e, KeyError):
        return f"missing field {e.args[0]!r}" if e.args else "a field is missing"
    return str(e) or type(e).__name__


def _schema_format(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"type": "json_schema", "json_schema": {"name": name, "schema": schema, "strict": True}}


def _rejects_json_schema(response: httpx.Response) -> bool:
    if response.status_code not in (400, 422):
        return False
    text = response.text.lower()
    return "response_format" in text or "json_schema" in text


def _retry_after(response: httpx.Response, attempt: int) -> float:
    """Seconds to wait: the server's Retry-After (seconds or a date), else 1, 2, 4 …"""
    value = response.headers.get("retry-after", "").strip()
    wait = float(2 ** (attempt - 1))
    if value:
        try:
            wait = float(value)
        except ValueError:
            with contextlib.suppress(TypeError, ValueError):
                wait = parsedate_to_datetime(value).timestamp() - time.time()
    if not math.isfinite(wait):
        wait = float(2 ** (attempt - 1))
    return min(max(wait, 0.0), _RETRY_AFTER_CAP)

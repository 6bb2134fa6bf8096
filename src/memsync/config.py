"""Per-device settings: which extractor runs and which language model, if any, helps.

Settings live inside the encrypted database (the `meta` table), not in a plaintext file,
because they may hold an API key. They belong to this device, not to the vault's history:
they are not operations in the log and do not sync (a laptop may use a local Ollama, a
phone a hosted endpoint).

`memsync config llm.base_url http://localhost:11434/v1` sets a value; `SETTINGS` lists
every key with its meaning, and `parse_value` checks a value before it is stored.
`extractor_for`, `judge_for` and `summarizer_for` pick the backends the settings choose;
`memsync.llm` (and httpx with it) is imported only when a model is configured.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

import apsw

from memsync.errors import CorruptVault, UsageError
from memsync.extract.base import Extractor
from memsync.extract.rules import RuleExtractor
from memsync.profile.build import KeepPrivateLocal, RuleSummarizer, Summarizer
from memsync.reconcile.decide import Judge
from memsync.retrieve.context import MIN_BUDGET
from memsync.store import db

if TYPE_CHECKING:
    from memsync.llm import ChatModel

__all__ = [
    "SETTINGS",
    "Settings",
    "chat_model_for",
    "decode",
    "describe",
    "encode",
    "extractor_for",
    "judge_for",
    "load",
    "parse_value",
    "summarizer_for",
]


@dataclass(frozen=True)
class Settings:
    """This device's settings. Field names with `_` are the keys with `.` (`llm_model` is
    `llm.model`)."""

    extractor: str = "rules"
    llm_base_url: str | None = None
    llm_model: str | None = None
    llm_api_key: str | None = None
    llm_timeout: float = 60.0
    reconcile_with_llm: bool = True
    profile_with_llm: bool = True
    proxy_upstream: str | None = None
    proxy_api_key: str | None = None
    proxy_budget: int = 1000
    proxy_timeout: float = 120.0
    proxy_capture: bool = False
    sync_interval: float = 300.0
    retention_episodic: int | None = None  # days after an episodic memory ends
    owner_name: str | None = None  # the vault owner's name, for group conversations

    @property
    def llm_configured(self) -> bool:
        return bool(self.llm_base_url and self.llm_model)


@dataclass(frozen=True)
class _Key:
    name: str
    field: str
    help: str
    secret: bool = False


SETTINGS: tuple[_Key, ...] = (
    _Key("extractor", "extractor", "which extractor ingest runs: rules (offline) or llm"),
    _Key("llm.base_url", "llm_base_url", "OpenAI-compatible API root, e.g. http://host:11434/v1"),
    _Key("llm.model", "llm_model", "model name sent to the endpoint, e.g. llama3.1:8b"),
    _Key("llm.api_key", "llm_api_key", "bearer token for the endpoint (kept encrypted)", True),
    _Key("llm.timeout", "llm_timeout", "seconds to wait for one answer"),
    _Key("reconcile.llm", "reconcile_with_llm", "let the model decide hard duplicate cases"),
    _Key("profile.llm", "profile_with_llm", "let the model write the profile's summaries"),
    _Key("proxy.upstream", "proxy_upstream", "API root the proxy sends chats to (OpenAI-style)"),
    _Key("proxy.api_key", "proxy_api_key", "the upstream's key (kept encrypted)", True),
    _Key("proxy.budget", "proxy_budget", "tokens of memories the proxy adds to a chat request"),
    _Key("proxy.timeout", "proxy_timeout", "seconds the proxy waits for the upstream"),
    _Key("proxy.capture", "proxy_capture", "store proxied chats and extract memories from them"),
    _Key(
        "sync.interval",
        "sync_interval",
        "seconds between `memsync serve`'s syncs with every remote (and soon after each "
        "write); 0 turns background sync off",
    ),
    _Key(
        "owner.name",
        "owner_name",
        "your name: in a conversation where several named people speak, what the others "
        "say is remembered as about them",
    ),
    _Key(
        "retention.episodic",
        "retention_episodic",
        "forget episodic memories this long after they ended, e.g. 365d (on every device, "
        "at each sync and in `memsync serve`); unset keeps them",
    ),
)
_BY_NAME = {k.name: k for k in SETTINGS}
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
# Above this a memory block would crowd the conversation out of any model's window.
MAX_PROXY_BUDGET = 100_000


def _key(name: str) -> _Key:
    try:
        return _BY_NAME[name]
    except KeyError:
        known = ", ".join(k.name for k in SETTINGS)
        raise UsageError(f"unknown setting {name!r} (known: {known})") from None


def parse_value(settings: Settings, name: str, value: str | None) -> Settings:
    """`settings` with `name` set to `value` (None: back to the default), checked."""
    key = _key(name)
    if value is None:
        return replace(settings, **{key.field: getattr(Settings(), key.field)})
    value = value.strip()
    parsed: Any
    if key.field == "extractor":
        if value not in ("rules", "llm"):
            raise UsageError("extractor must be 'rules' or 'llm'")
        parsed = value
    elif key.field in ("llm_base_url", "proxy_upstream"):
        url = urlparse(value)
        if url.scheme not in ("http", "https") or not url.netloc:
            raise UsageError(f"{name} must be an http(s) URL, got {value!r}")
        parsed = value.rstrip("/")
    elif key.field in ("llm_timeout", "proxy_timeout"):
        try:
            parsed = float(value)
        except ValueError:
            parsed = -1.0
        if not 0 < parsed <= 3600:
            raise UsageError(f"{name} must be a number of seconds between 0 and 3600")
    elif key.field == "sync_interval":
        try:
            parsed = float(value)
        except ValueError:
            parsed = -1.0
        if not (parsed == 0 or 5 <= parsed <= 86400):
            raise UsageError("sync.interval must be 0 (off) or 5 to 86400 seconds")
    elif key.field == "retention_episodic":
        days = value.lower().removesuffix("d")
        parsed = int(days) if days.isdigit() else -1
        if not 1 <= parsed <= 36500:
            raise UsageError("retention.episodic is a number of days, e.g. 365d")
    elif key.field == "proxy_budget":
        parsed = int(value) if value.isdigit() else -1
        if not MIN_BUDGET <= parsed <= MAX_PROXY_BUDGET:
            raise UsageError(
                f"proxy.budget must be a number of tokens from {MIN_BUDGET} to {MAX_PROXY_BUDGET}"
            )
    elif key.field in ("reconcile_with_llm", "profile_with_llm", "proxy_capture"):
        if value.lower() not in _TRUE | _FALSE:
            raise UsageError(f"{name} must be true or false")
        parsed = value.lower() in _TRUE
    else:
        if not value:
            raise UsageError(f"{name} cannot be empty (use --unset to clear it)")
        parsed = value
    return replace(settings, **{key.field: parsed})


def describe(settings: Settings) -> list[tuple[str, str, str]]:
    """(key, shown value, help) for every setting; secrets are masked."""
    out = []
    for key in SETTINGS:
        value = getattr(settings, key.field)
        if value is None:
            shown = "(not set)"
        elif key.secret:
            shown = "(set, hidden)"
        elif isinstance(value, bool):
            shown = "true" if value else "false"
        else:
            shown = str(value)
        out.append((key.name, shown, key.help))
    return out


def encode(settings: Settings) -> str:
    return json.dumps({f.name: getattr(settings, f.name) for f in fields(Settings)})


def decode(text: str | None) -> Settings:
    if text is None:
        return Settings()
    try:
        data = json.loads(text)
        known = {f.name for f in fields(Settings)}
        return Settings(**{k: v for k, v in data.items() if k in known})
    except (ValueError, TypeError, AttributeError):
        raise CorruptVault("the stored settings are unreadable") from None


def load(conn: apsw.Connection) -> Settings:
    """This device's settings as stored in the vault database."""
    return decode(db.read_meta(conn, "settings"))


# The backends the settings choose.


def extractor_for(
    settings: Settings, owner_lookup: Callable[[], str | None] | None = None
) -> Extractor:
    """The extractor the settings choose: the offline rules, or the configured LLM. The
    owner's name is the setting, else what `owner_lookup` finds (see `owner_from`)."""
    if settings.extractor != "llm":
        return RuleExtractor(owner=settings.owner_name, owner_lookup=owner_lookup)
    from memsync.extract.llm import LLMExtractor

    return LLMExtractor(chat_model_for(settings, "extractor is llm"))


def owner_from(conn: apsw.Connection) -> str | None:
    """The name an active memory gives the vault's owner ("Is named Priya")."""
    row = conn.execute(
        "SELECT text FROM memories WHERE status='active' AND text LIKE 'Is named %' "
        "ORDER BY observed_at DESC LIMIT 1"
    ).fetchone()
    return None if row is None else str(row[0]).removeprefix("Is named ").strip() or None


def judge_for(settings: Settings) -> Judge | None:
    """The LLM that decides hard reconciliation cases, when one is configured."""
    if not (settings.llm_configured and settings.reconcile_with_llm):
        return None
    from memsync.reconcile.judge import LLMJudge

    return LLMJudge(chat_model_for(settings, "reconcile.llm is on"))


def summarizer_for(settings: Settings) -> Summarizer:
    """Who writes the profile: the configured LLM, or the offline rules. Private
    memories are always summarised on this device."""
    if not (settings.llm_configured and settings.profile_with_llm):
        return RuleSummarizer()
    from memsync.profile.llm import LLMSummarizer

    return KeepPrivateLocal(LLMSummarizer(chat_model_for(settings, "profile.llm is on")))


def chat_model_for(settings: Settings, why: str) -> ChatModel:
    """The configured model; `why` (the setting that needs one) names the cause when
    none is configured."""
    if not settings.llm_configured:
        raise UsageError(
            f"{why} but no model is configured: set llm.base_url and llm.model "
            "with `memsync config`"
        )
    from memsync.llm import LLMSettings, OpenAIChat

    assert settings.llm_base_url is not None and settings.llm_model is not None
    return OpenAIChat(
        LLMSettings(
            base_url=settings.llm_base_url,
            model=settings.llm_model,
            api_key=settings.llm_api_key,
            timeout=settings.llm_timeout,
        )
    )

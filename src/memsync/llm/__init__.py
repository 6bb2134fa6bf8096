"""The opt-in language-model provider: any OpenAI-compatible chat-completions endpoint.

`OpenAIChat` (configured by `LLMSettings`) is the transport every model-backed step uses:
the extractor (`memsync.extract.llm`), the reconciliation judge (`memsync.reconcile.judge`)
and the profile's writer (`memsync.profile.llm`). Nothing here runs unless a caller
builds one.
"""

from memsync.llm.client import (
    ChatModel,
    ChatTurn,
    LLMSettings,
    MalformedOutput,
    OpenAIChat,
    ask_validated,
    parse_json_answer,
)

__all__ = [
    "ChatModel",
    "ChatTurn",
    "LLMSettings",
    "MalformedOutput",
    "OpenAIChat",
    "ask_validated",
    "parse_json_answer",
]

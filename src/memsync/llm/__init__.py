"""The opt-in language-model backend: any OpenAI-compatible chat-completions endpoint.

`OpenAIChat` (configured by `LLMSettings`) is the transport; `LLMExtractor` turns
conversations into candidate memories, `LLMJudge` settles hard reconciliation cases and
`LLMSummarizer` writes profile text. Nothing here runs unless a caller builds one.
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
from memsync.llm.extractor import LLMExtractor
from memsync.llm.judge import Judgement, LLMJudge
from memsync.llm.summarize import LLMSummarizer

__all__ = [
    "ChatModel",
    "ChatTurn",
    "Judgement",
    "LLMExtractor",
    "LLMJudge",
    "LLMSettings",
    "LLMSummarizer",
    "MalformedOutput",
    "OpenAIChat",
    "ask_validated",
    "parse_json_answer",
]

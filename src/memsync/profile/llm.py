"""Profile text by a chat model: a summary per category and a short bio.

The model writes only from the statements it is given (the caller picks them: active
semantic memories of one category, or identity/career/relationship ones for the bio).
At most about 16,000 characters of statements are sent, in the order given, so callers
should put the most important first.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from memsync.llm.client import ChatModel, ask_validated
from memsync.model import Category

__all__ = ["PROMPT_VERSION", "LLMSummarizer"]

PROMPT_VERSION = "1"
_MAX_INPUT = 16_000
_MAX_SUMMARY = 600
_MAX_BIO = 800
_VOICE = """Use only the statements given: add nothing, guess nothing, and leave out \
anything they do not say. Write in the third person: call the user by name if a \
statement gives it, otherwise "the user"; use the pronouns a statement gives, otherwise \
"they". Plain prose, no lists, no headings.
Answer with JSON only: {"summary": "..."}."""
_SUMMARY_SYSTEM = f"""You write one section of a user's profile from statements about \
them, in 2 to 3 sentences. {_VOICE}"""
_BIO_SYSTEM = f"""You write a short bio of a user from statements about their identity, \
career and relationships, in 2 to 4 sentences. {_VOICE}"""
SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"summary": {"type": "string"}},
    "required": ["summary"],
    "additionalProperties": False,
}


class LLMSummarizer:
    """Writes profile summaries and bios with a chat model.

    Args:
        model: the chat model to ask, e.g. an `OpenAIChat`.

    Attributes:
        name: the model and prompt version, e.g. "llm:gpt-4o-mini/1".
    """

    def __init__(self, model: ChatModel) -> None:
        self.model = model
        # Recorded by callers (the profile's builder), so it names the model and prompt.
        self.name = f"{model.name}/{PROMPT_VERSION}"

    def summarize(self, category: Category, statements: Sequence[str]) -> str:
        """A two-to-three sentence summary of `statements` (all of one category); "" for none.

        Raises `LLMError` when the endpoint fails or the answer stays invalid after one
        retry.
        """
        listed = _listing(statements)
        if not listed:
            return ""
        user = f"Category: {category.value}\n\nStatements about the user:\n{listed}"
        return self._ask(_SUMMARY_SYSTEM, user, _MAX_SUMMARY)

    def bio(self, statements: Sequence[str]) -> str:
        """A two-to-four sentence bio from identity, career and relationship statements; "" for
        none. Raises `LLMError` like `summarize`."""
        listed = _listing(statements)
        if not listed:
            return ""
        return self._ask(_BIO_SYSTEM, f"Statements about the user:\n{listed}", _MAX_BIO)

    def _ask(self, system: str, user: str, cap: int) -> str:
        def validate(answer: Any) -> str:
            if not isinstance(answer, dict) or "summary" not in answer:
                raise KeyError("summary")
            text = answer["summary"]
            if not isinstance(text, str) or not text.strip():
                raise ValueError("summary must be non-empty text")
            text = " ".join(text.split())
            if len(text) > cap:
                raise ValueError(f"summary is {len(text)} characters; keep it under {cap}")
            return text

        return ask_validated(self.model, system, user, "summary", SCHEMA, validate)


def _listing(statements: Sequence[str]) -> str:
    """The statements as a bulleted list, within the input budget."""
    lines: list[str] = []
    size = 0
    for s in statements:
        text = " ".join(s.split())
        if not text:
            continue
        if lines and size + len(text) > _MAX_INPUT:
            break
        lines.append(f"- {text}")
        size += len(text) + 3
    return "\n".join(lines)

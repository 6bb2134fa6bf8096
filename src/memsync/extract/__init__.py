"""Extractors: turn conversations into candidate memories.

`RuleExtractor` is the built-in offline extractor (no network, no model); every extractor
follows the `Extractor` protocol and returns `Candidate`s.
"""

from memsync.extract.base import Candidate, Extractor
from memsync.extract.rules import RuleExtractor

__all__ = ["Candidate", "Extractor", "RuleExtractor"]

"""Haystack components for Google's Gemini Embedding 2: text, documents and media queries.

Also importable as ``haystack_integrations.components.embedders.gemb2``, the path saved
pipelines record.
"""

from .embedders import GeminiDocumentEmbedder, GeminiMediaQueryEmbedder, GeminiTextEmbedder
from .retriever import GeminiMatryoshkaRetriever

__all__ = [
    "GeminiDocumentEmbedder",
    "GeminiMatryoshkaRetriever",
    "GeminiMediaQueryEmbedder",
    "GeminiTextEmbedder",
]

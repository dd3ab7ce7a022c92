"""Haystack components for Google's Gemini Embedding 2: text, documents and media queries.

Also importable as ``haystack_integrations.components.embedders.gemb2``, the path saved
pipelines record.
"""

from .document_embedder import GeminiDocumentEmbedder
from .media_query_embedder import GeminiMediaQueryEmbedder
from .retriever import GeminiMatryoshkaRetriever
from .text_embedder import GeminiTextEmbedder

__all__ = [
    "GeminiDocumentEmbedder",
    "GeminiMatryoshkaRetriever",
    "GeminiMediaQueryEmbedder",
    "GeminiTextEmbedder",
]

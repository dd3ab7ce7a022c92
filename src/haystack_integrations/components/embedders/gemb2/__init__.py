"""Gemini Embedding 2 embedders at Haystack's integration path, which ``Pipeline.loads``
imports without extending its deserialisation allowlist."""

from haystack_gemb2.embedders import (
    GeminiDocumentEmbedder,
    GeminiMediaQueryEmbedder,
    GeminiTextEmbedder,
)

__all__ = ["GeminiDocumentEmbedder", "GeminiMediaQueryEmbedder", "GeminiTextEmbedder"]

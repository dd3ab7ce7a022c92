"""LangChain integration for Gemini Embedding 2 (text, images, audio, video, PDF in one space)."""

from .embeddings import GeminiEmbeddings
from .loaders import MixedMediaLoader
from .retrievers import GeminiMatryoshkaRetriever
from .vectorstores import add_media_documents

__all__ = [
    "GeminiEmbeddings",
    "GeminiMatryoshkaRetriever",
    "MixedMediaLoader",
    "add_media_documents",
]

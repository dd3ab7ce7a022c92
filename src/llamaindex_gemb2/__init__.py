"""LlamaIndex integration of gemb2: Gemini Embedding 2 as a multimodal embedding
model, a node parser that fits media to the model's limits, and a media reader."""

from ._media import label_media
from .embedding import GeminiMultiModalEmbedding
from .node_parser import GeminiMediaNodeParser
from .reader import GeminiMediaReader
from .retriever import GeminiMatryoshkaRetriever

__all__ = [
    "GeminiMatryoshkaRetriever",
    "GeminiMediaNodeParser",
    "GeminiMediaReader",
    "GeminiMultiModalEmbedding",
    "label_media",
]

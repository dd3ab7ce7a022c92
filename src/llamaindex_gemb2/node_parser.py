"""A LlamaIndex node parser that cuts documents pointing at media files into nodes
that fit Gemini Embedding 2's per-item limits.

The splitting, the piece metadata and the token budget for the metadata LlamaIndex
puts in front of a chunk are the core's (``gemb2.ingest.loading.load_file``,
``gemb2.ingest.pieces``); this module turns pieces into nodes: their metadata,
SOURCE/PREVIOUS/NEXT relationships, and a short label as text, so LlamaIndex does
not drop the node as empty and its ingestion cache cannot mistake one piece for another.
Under that cache, a media document whose own cache key does not depend on its content
is refused (see ``label_media``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from llama_index.core.bridge.pydantic import Field
from llama_index.core.node_parser import NodeParser
from llama_index.core.schema import (
    DEFAULT_TEXT_NODE_TMPL,
    BaseNode,
    Document,
    ImageDocument,
    ImageNode,
    MediaResource,
    MetadataMode,
    Node,
    NodeRelationship,
    TextNode,
)
from llama_index.core.utils import get_tqdm_iterable

from gemb2 import DEFAULT_MODEL, Item, Limits, Media, get_model
from gemb2.ingest.loading import load_file, source_path
from gemb2.ingest.pieces import (
    BOOKKEEPING_KEYS,
    PIECE_KEYS,
    is_piece,
    label,
    media_meta,
    remember,
    text_limits,
    text_pieces,
)
from gemb2.inputs.detect import media_type
from gemb2.inputs.probe import modality_of

from ._cache import cache_refusal, in_cached_run, keyed_on_content
from ._media import Resolver, node_name, own_text


class GeminiMediaNodeParser(NodeParser):
    """Documents to nodes that fit the model: PDFs in pieces of at most 6 pages, audio
    and video in overlapping segments under the duration limit, long text in
    token-bounded chunks, images whole.

    A document points at a media file through an ``ImageNode``/``ImageDocument``
    ``image_path``, a ``Node`` resource ``path``, or ``metadata["file_path"]`` (the
    convention of LlamaIndex readers and of ``GeminiMediaReader``). Such a file is
    read and split even if a reader also extracted text from it; several documents
    naming one file (SimpleDirectoryReader makes one per PDF page) yield its pieces
    once. Media held as bytes or a URL pass through as one node. Every other
    document is text.
    """

    model_name: str = Field(
        default=DEFAULT_MODEL, description="Model whose limits the pieces must fit."
    )
    limits: Limits | None = Field(default=None, description="Override the model's limits.")
    use_video_audio: bool = Field(
        default=False, description="Cut videos with audio to the shorter limit."
    )
    overlap_seconds: float = Field(
        default=2.0, ge=0, description="Overlap of consecutive audio/video segments."
    )
    chunk_tokens: int | None = Field(
        default=None,
        ge=1,
        description="Largest text chunk in tokens; default the model's limit.",
    )

    @classmethod
    def class_name(cls) -> str:
        return "GeminiMediaNodeParser"

    @property
    def resolved_limits(self) -> Limits:
        return self.limits or get_model(self.model_name).limits

    def _parse_nodes(
        self, nodes: Sequence[BaseNode], show_progress: bool = False, **kwargs: Any
    ) -> list[BaseNode]:
        if in_cached_run():
            unkeyed = [node_name(n) for n in nodes if not self._keyed(n)]
            if unkeyed:
                raise cache_refusal(unkeyed)
        seen: set[str] = set()
        out: list[BaseNode] = []
        for node in get_tqdm_iterable(nodes, show_progress, "Splitting media"):
            out.extend(self._parse_one(node, seen))
        return out

    def _parse_one(self, doc: BaseNode, seen: set[str]) -> list[BaseNode]:
        meta = doc.metadata
        if is_piece(meta) and not isinstance(doc, Document):
            return [doc]  # already a piece that fits
        path = _file_of(doc)
        if path is not None:
            key = str(Path(path).resolve())
            if key in seen:
                return []
            seen.add(key)
            items = load_file(
                path,
                self._limits_for(doc),
                use_video_audio=self.use_video_audio,
                overlap_seconds=self.overlap_seconds,
            )
            remember(items)
            return self._build(items, doc)
        media = Resolver(self.resolved_limits).media(doc)
        if media:
            return [self._pass_through(doc, media)]
        source = str(doc.metadata.get("file_path") or doc.node_id)
        return self._build(text_pieces(own_text(doc), self._limits_for(doc), source=source), doc)

    def _keyed(self, doc: BaseNode) -> bool:
        """Whether IngestionPipeline's cache key for this document (its text and, when
        it has text, its metadata) depends on what the parser will read: a file's
        ``file_hash`` or the text a reader took from it; media held in memory or at a
        URL need their ``file_hash``. Text documents key on their text."""
        if is_piece(doc.metadata) and not isinstance(doc, Document):
            return True
        path = _file_of(doc)
        if path is not None:
            text = own_text(doc).strip()
            return keyed_on_content(doc) or bool(text and text not in _file_labels(doc, path))
        if Resolver(self.resolved_limits).media(doc):
            return keyed_on_content(doc)
        return True

    def _limits_for(self, doc: BaseNode) -> Limits:
        """The model's limits, with the text budget cut by the metadata LlamaIndex will
        put in front of each chunk's text when it is embedded."""
        added = doc.get_metadata_str(mode=MetadataMode.EMBED) if self.include_metadata else ""
        return text_limits(self.resolved_limits, added_text=added, chunk_tokens=self.chunk_tokens)

    def _common(self, i: int, doc: BaseNode, meta: dict[str, Any]) -> dict[str, Any]:
        return {
            "id_": self.id_func(i, doc),
            "metadata": meta,
            "excluded_embed_metadata_keys": _union(doc.excluded_embed_metadata_keys, PIECE_KEYS),
            "excluded_llm_metadata_keys": _union(doc.excluded_llm_metadata_keys, BOOKKEEPING_KEYS),
            "metadata_separator": doc.metadata_separator,
            "metadata_template": doc.metadata_template,
            "text_template": getattr(doc, "text_template", DEFAULT_TEXT_NODE_TMPL),
            "relationships": {NodeRelationship.SOURCE: doc.as_related_node_info()},
        }

    def _build(self, items: list[Item], doc: BaseNode) -> list[BaseNode]:
        nodes: list[BaseNode] = []
        for i, item in enumerate(items):
            meta = dict(item.metadata)
            common = self._common(i, doc, meta)
            if item.is_text_only:
                nodes.append(
                    TextNode(
                        text=item.text,
                        start_char_idx=meta.get("char_start"),
                        end_char_idx=meta.get("char_end"),
                        **common,
                    )
                )
            elif meta["modality"] == "image":
                nodes.append(
                    ImageNode(
                        text=label(meta),
                        image_path=str(source_path(meta)),
                        image_mimetype=str(meta["mime_type"]),
                        **common,
                    )
                )
            else:
                nodes.append(TextNode(text=label(meta), **common))
        return nodes

    def _pass_through(self, doc: BaseNode, media: list[Media]) -> BaseNode:
        """Media held as bytes or a URL: one node, labelled and content-hashed."""
        meta = media_meta(media)
        common = self._common(0, doc, meta)
        if isinstance(doc, (ImageNode, ImageDocument)):
            return ImageNode(
                text=label(meta),
                image=doc.image,
                image_url=doc.image_url,
                image_mimetype=doc.image_mimetype or str(meta["mime_type"]),
                **common,
            )
        if not isinstance(doc, Node):
            return doc  # already one of our pieces
        return Node(
            text_resource=MediaResource(text=label(meta)),
            image_resource=doc.image_resource,
            audio_resource=doc.audio_resource,
            video_resource=doc.video_resource,
            **common,
        )


def _file_labels(doc: BaseNode, path: str) -> set[str]:
    """The labels a gemb2 reader or ``label_media`` gives a document for ``path``."""
    mime = media_type(path)
    kinds = {doc.metadata.get("modality"), modality_of(mime) if mime else None}
    return {label(doc.metadata)} | {label({"source": path, "modality": k}) for k in kinds if k}


def _union(first: Sequence[str], second: Sequence[str]) -> list[str]:
    return list(dict.fromkeys([*first, *second]))


def _file_of(node: BaseNode) -> str | None:
    """The file a document stands for, if it names one."""
    if isinstance(node, ImageNode) and node.image_path and not node.image:
        return node.image_path
    if isinstance(node, Node):
        paths = [
            r.path
            for r in (node.image_resource, node.audio_resource, node.video_resource)
            if r is not None and r.path is not None and r.data is None
        ]
        if len(paths) == 1:
            return str(paths[0])
    file_path = node.metadata.get("file_path")
    if not file_path:
        return None
    if media_type(str(file_path)):
        return str(file_path)
    if not own_text(node).strip() and Path(str(file_path)).is_file():
        return str(file_path)  # a text file nobody has read yet
    return None

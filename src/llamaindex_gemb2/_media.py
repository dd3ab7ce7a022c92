"""LlamaIndex nodes to gemb2 Items, and back to labels.

LlamaIndex embeds ``node.get_content()`` text, which is empty for media. This module
finds the media a node really holds (an ``ImageNode``'s image, a ``Node``'s image,
audio or video resource, or a media file named in its metadata) so the embedding
sends the media itself; pieces of split files come back through ``gemb2.ingest.pieces``.

Two LlamaIndex habits need media nodes to carry text: ``VectorStoreIndex`` drops a
node whose content is empty, and ``IngestionPipeline``'s cache keys each step on its
input nodes' ``get_content(metadata_mode=ALL)``, which is ``""`` for a ``Document``
or ``ImageDocument`` without text (its metadata is left out too). ``label_media``
gives such nodes a label and a content hash; ``_cache`` tells whether a step is
running under that cache, where a node without them must be refused.

Glue only: which file or type is media, the content hash and the piece metadata are
the core's (``gemb2.inputs.detect``, ``gemb2.ingest.pieces``).
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from typing import Any

from llama_index.core.schema import (
    BaseNode,
    ImageNode,
    MediaResource,
    MetadataMode,
    Node,
    TextNode,
)

from gemb2 import DEFAULT_MODEL, InputError, Item, Limits, Media, get_model
from gemb2.ingest.pieces import is_piece, label, load_piece
from gemb2.inputs.detect import (
    MEDIA_MODALITIES,
    content_hash,
    is_file_read_as_text,
    media_type,
)


def own_text(node: BaseNode) -> str:
    """The node's own text, without metadata."""
    if isinstance(node, Node):
        return (node.text_resource.text or "") if node.text_resource else ""
    if isinstance(node, TextNode):
        return node.text
    return node.get_content(metadata_mode=MetadataMode.NONE)


def _from_resource(res: MediaResource, name: str) -> Media:
    if res.data is not None:
        return Media.from_bytes(base64.b64decode(res.data), res.mimetype, name=name)
    if res.path is not None:
        return Media.from_path(res.path)
    if res.url is not None:
        return Media.from_url(str(res.url), res.mimetype)
    raise InputError("media resource holds no data, path or url", source=name)


class Resolver:
    """Turns nodes into Items; splits a file again only when a piece is not in the store."""

    def __init__(
        self,
        limits: Limits,
        *,
        use_video_audio: bool = False,
        overlap_seconds: float = 2.0,
        interleave_text: bool = False,
    ) -> None:
        self.limits = limits
        self.use_video_audio = use_video_audio
        self.overlap_seconds = overlap_seconds
        self.interleave_text = interleave_text

    def item(self, node: BaseNode, media: list[Media] | None = None) -> Item | str:
        """Media nodes become media Items; text nodes their EMBED-mode text."""
        media = self.media(node) if media is None else media
        if not media:
            return node.get_content(metadata_mode=MetadataMode.EMBED)
        text = caption(node, media)
        parts: tuple[str | Media, ...] = (
            (text, *media) if text and self.interleave_text else tuple(media)
        )
        return Item(parts=parts, metadata={"source": media[0].name})

    def media(self, node: BaseNode) -> list[Media]:
        """The media a node holds, or [] for a text node."""
        meta = node.metadata
        if is_piece(meta) and meta.get("modality") in MEDIA_MODALITIES and _is_file(node):
            return [self._piece(meta)]
        name = str(meta.get("source") or meta.get("file_path") or node.node_id)
        if isinstance(node, ImageNode):
            if node.image:
                data = base64.b64decode(node.image)
                return [Media.from_bytes(data, node.image_mimetype, name=name)]
            if node.image_path:
                return [Media.from_path(node.image_path)]
            if node.image_url:
                return [Media.from_url(node.image_url, node.image_mimetype)]
        if isinstance(node, Node):
            resources = (node.image_resource, node.audio_resource, node.video_resource)
            found = [_from_resource(r, name) for r in resources if r is not None]
            if found:
                return found
        file_path = meta.get("file_path")
        if file_path and media_type(str(file_path)):
            text = own_text(node)
            if (
                not text.strip()
                or text.strip() == label({"source": file_path, "modality": meta.get("modality")})
                or is_file_read_as_text(text, str(file_path))
            ):
                return [Media.from_path(str(file_path))]  # a reader's media Document
        return []

    def _piece(self, meta: Mapping[str, Any]) -> Media:
        """A parsed piece: remembered from the parser, else cut again by the core."""
        item = load_piece(
            meta,
            self.limits,
            use_video_audio=self.use_video_audio,
            overlap_seconds=self.overlap_seconds,
        )
        return item.media[0]


def _is_file(node: BaseNode) -> bool:
    """Whether a node with our metadata stands for a file (not bytes or a URL the
    parser passed through); a missing file is then an error, never a text fallback."""
    if isinstance(node, ImageNode) and (node.image or node.image_url):
        return False
    if isinstance(node, Node):
        resources = (node.image_resource, node.audio_resource, node.video_resource)
        if any(r is not None and r.path is None for r in resources):
            return False
    return True


# -- labels ----------------------------------------------------------------------------


def labels_of(node: BaseNode, media: Sequence[Media]) -> set[str]:
    """The labels gemb2 gives this node (by the parser, the reader or ``label_media``)."""
    meta = node.metadata
    out = {label(meta), label({"source": _name(node, media), "modality": _modality(media)})}
    if meta.get("file_path"):
        out.add(label({"source": meta["file_path"], "modality": meta.get("modality")}))
    return out


def caption(node: BaseNode, media: Sequence[Media]) -> str:
    """The node's own words about its media: its text, unless that is a label or the
    media's own bytes read as text."""
    text = own_text(node)
    if not text.strip() or text.strip() in labels_of(node, media):
        return ""
    file_path = node.metadata.get("file_path")
    if file_path and is_file_read_as_text(text, str(file_path)):
        return ""
    return text.strip()


def node_name(node: BaseNode) -> str:
    """What a user knows a node by, for error messages: its file, URL or id."""
    meta = node.metadata
    named = meta.get("source") or meta.get("file_path")
    if named:
        return str(named)
    if isinstance(node, ImageNode) and (node.image_path or node.image_url):
        return str(node.image_path or node.image_url)
    if isinstance(node, Node):
        for res in (node.image_resource, node.audio_resource, node.video_resource):
            if res is not None and (res.path or res.url):
                return str(res.path or res.url)
    return f"node {node.node_id}"


def _name(node: BaseNode, media: Sequence[Media]) -> str:
    """The name in a label: the file or URL, else (media held in memory) the start of
    its content hash, which, unlike the node's random id, is the same on every run."""
    meta = node.metadata
    named = meta.get("source") or meta.get("file_path")
    if named:
        return str(named)
    if media[0].name != node.node_id:
        return media[0].name
    return content_hash(media)[:12]


def _modality(media: Sequence[Media]) -> str:
    return media[0].modality if len(media) == 1 else "interleaved"


def marked(node: BaseNode, media: Sequence[Media], *, in_place: bool = False) -> BaseNode:
    """The node with its label as text (when it has no words of its own) and its content
    hash as ``file_hash``, hidden from text embeddings and LLMs: the node itself when
    it has them, else a copy (or the node changed, ``in_place``)."""
    text = None
    if not caption(node, media) and own_text(node).strip() not in labels_of(node, media):
        text = label({"source": _name(node, media), "modality": _modality(media)})
    digest = None if node.metadata.get("file_hash") else content_hash(media)
    hidden = (node.excluded_embed_metadata_keys, node.excluded_llm_metadata_keys)
    if text is None and digest is None and all("file_hash" in keys for keys in hidden):
        return node
    out = node if in_place else node.model_copy()
    if digest is not None:
        out.metadata = {**node.metadata, "file_hash": digest}
    out.excluded_embed_metadata_keys = _with(node.excluded_embed_metadata_keys, "file_hash")
    out.excluded_llm_metadata_keys = _with(node.excluded_llm_metadata_keys, "file_hash")
    if text is not None:
        out.set_content(text)
    return out


def _with(keys: Sequence[str], key: str) -> list[str]:
    return list(keys) if key in keys else [*keys, key]


def label_media(nodes: Sequence[BaseNode], *, limits: Limits | None = None) -> Sequence[BaseNode]:
    """Label the media nodes among ``nodes`` in place (and return them): a media node
    with no text gets a label such as ``[image] cat.png`` as text, so
    ``VectorStoreIndex`` keeps it, and ``file_hash`` (SHA-256 of its media) in
    metadata, so ``IngestionPipeline``'s cache keys on its content. Call it on
    documents that no gemb2 reader made (``ImageDocument(image=...)``,
    ``SimpleDirectoryReader`` with llama-index-readers-file) before ``pipeline.run``.
    Text nodes and nodes ``GeminiMediaNodeParser`` made are left as they are."""
    resolver = Resolver(limits or get_model(DEFAULT_MODEL).limits)
    for node in nodes:
        if is_piece(node.metadata):
            continue
        media = resolver.media(node)
        if media:
            marked(node, media, in_place=True)
    return nodes

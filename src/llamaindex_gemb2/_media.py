"""LlamaIndex nodes to gemb2 Items, and back to labels.

LlamaIndex embeds ``node.get_content()`` text, which is empty for media. This module
finds the media a node really holds (an ``ImageNode``'s image, a ``Node``'s image,
audio or video resource, or a media file named in its metadata) so the embedding
sends the media itself; pieces of split files come back through ``gemb2.pieces``.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

from llama_index.core.schema import (
    BaseNode,
    ImageNode,
    MediaResource,
    MetadataMode,
    Node,
    TextNode,
)

from gemb2 import InputError, Item, Limits, Media
from gemb2.loading import label
from gemb2.media import mime_from_suffix
from gemb2.pieces import load_piece
from gemb2.probe import modality_of

MEDIA_MODALITIES = frozenset({"image", "audio", "video", "pdf"})
LLM_HIDDEN_KEYS = ("file_hash", "mime_type", "piece", "pieces", "char_start", "char_end")


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


def is_piece(meta: Mapping[str, Any]) -> bool:
    """Whether metadata is that of a piece GeminiMediaNodeParser made."""
    return all(meta.get(k) is not None for k in ("source", "file_hash", "modality", "piece"))


def is_media_file(path: str) -> bool:
    mime = mime_from_suffix(path)
    return mime is not None and modality_of(mime) in MEDIA_MODALITIES


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

    def item(self, node: BaseNode) -> Item | str:
        """Media nodes become media Items; text nodes their EMBED-mode text."""
        media = self.media(node)
        if not media:
            return node.get_content(metadata_mode=MetadataMode.EMBED)
        text = own_text(node).strip()
        caption = text and text != label(node.metadata) and self.interleave_text
        parts: tuple[str | Media, ...] = (text, *media) if caption else tuple(media)
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
        if file_path and is_media_file(str(file_path)):
            text = own_text(node).strip()
            if not text or text == label({"source": file_path, "modality": meta.get("modality")}):
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

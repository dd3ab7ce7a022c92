"""Haystack inputs to gemb2 Items: Documents (text, ``blob`` or ``meta["file_path"]``) and
query sources (paths, URLs, ByteStream, ImageContent, FileContent).

Glue only: reading, sniffing, limits, splitting and cutting a named PDF page are the
core's (``gemb2.inputs.detect``, ``gemb2.ingest.pieces.pdf_page``); this module decides
which part of a Document is media and keeps file paths inside ``root_path``.
"""

import base64
import binascii
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from haystack import Document
from haystack.dataclasses import ByteStream, FileContent, ImageContent

from gemb2 import InputError, Item, Media, MediaReadError, UnsupportedMediaError
from gemb2.ingest.pieces import PdfPages, pdf_page
from gemb2.inputs.detect import media_type

log = logging.getLogger("haystack_gemb2")

QuerySource = str | Path | ByteStream | ImageContent | FileContent
__all__ = ["PdfPages", "QuerySource", "document_item", "source_media"]
_REMOTE_SCHEMES = ("http", "https", "gs")


def resolve_path(value: str | os.PathLike[str], root_path: str | None, *, source: str) -> Path:
    """``value`` under ``root_path``; with a root, refuse anything that resolves outside it
    (``../``, absolute paths, symlinks pointing out), as Haystack's image components do."""
    if not root_path:
        return Path(value)
    root = Path(root_path).resolve()
    resolved = Path(root_path, value).resolve()
    if not resolved.is_relative_to(root):
        raise InputError(
            f"file path {str(value)!r} escapes root_path",
            source=source,
            limit=f"files under {root}",
        )
    return resolved


def compose_text(
    doc: Document,
    *,
    prefix: str,
    suffix: str,
    meta_fields_to_embed: Sequence[str],
    embedding_separator: str,
) -> str | None:
    """Haystack's convention (meta fields, then content, joined; prefix and suffix around),
    or None when there is nothing but the prefix and suffix to send."""
    values = [
        str(doc.meta[k]) for k in meta_fields_to_embed if k in doc.meta and doc.meta[k] is not None
    ]
    if doc.content:
        values.append(doc.content)
    body = embedding_separator.join(values)
    return prefix + body + suffix if body else None


def _declared_media_type(doc: Document, path: str) -> str | None:
    """The media type a file path is declared as (``meta["mime_type"]`` first, then its suffix),
    when it is one the model accepts; None means the document is text."""
    declared = doc.meta.get("mime_type")
    return media_type(path, declared if isinstance(declared, str) else None)


def has_content(doc: Document) -> bool:
    """Whether the Document carries text content of its own (any non-empty string, even
    whitespace: a blank PDF page split by ``DocumentSplitter`` is ``"\\f"``)."""
    return isinstance(doc.content, str) and doc.content != ""


def document_media(
    doc: Document,
    *,
    has_text: bool,
    file_path_meta_field: str | None,
    root_path: str | None,
    embed_file_with_content: bool = False,
    pdf_cache: PdfPages | None = None,
) -> Media | None:
    """The media a Document holds, or None when it is a text document.

    A Document is media when its ``blob`` holds an image, audio, video or PDF, or when it
    has no ``content`` and its file path names such a file (``meta["mime_type"]`` or the
    suffix). A Document with content is text: Haystack's converters (``PyPDFToDocument``,
    ``TextFileToDocument``, ...) put their source's ``file_path`` on every text chunk, and
    that file is where the text came from, not something to embed with it; the file is not
    even opened. ``embed_file_with_content=True`` sends such a file with the content as one
    interleaved input. ``blob`` wins over the file path; a ``blob`` the model cannot take is
    ignored when the Document has text to embed instead. A PDF with ``meta["page_number"]``
    is embedded as that page.
    """
    source = f"document {doc.id}"
    media: Media | None = None
    if doc.blob is not None:
        declared = doc.blob.mime_type or doc.meta.get("mime_type")
        try:
            media = Media.from_bytes(
                doc.blob.data, declared, name=f"{source} (blob)", metadata={"document_id": doc.id}
            )
        except UnsupportedMediaError:
            if not has_text:
                raise
            log.debug("%s: blob of type %s is not media; embedding its text", source, declared)
    read_file = embed_file_with_content or not has_content(doc)
    if media is None and file_path_meta_field and read_file:
        value = doc.meta.get(file_path_meta_field)
        if value is not None and _declared_media_type(doc, str(value)):
            path = resolve_path(str(value), root_path, source=source)
            try:
                media = Media.from_path(path, metadata={"document_id": doc.id})
            except MediaReadError as exc:  # name the document as well as the file
                reason = exc.reason
                if has_content(doc):
                    reason += (
                        "; embed_file_with_content=True sends a text Document's file with it:"
                        " leave it False to embed the text only"
                    )
                raise MediaReadError(reason, source=f"{source} ({path})") from exc
    page = doc.meta.get("page_number")
    if media is not None and media.modality == "pdf" and page is not None:
        media = pdf_page(media, page, pages=pdf_cache, source=source, field="meta['page_number']")
    return media


def document_item(
    doc: Document,
    *,
    prefix: str = "",
    suffix: str = "",
    meta_fields_to_embed: Sequence[str] = (),
    embedding_separator: str = "\n",
    title_meta_field: str | None = None,
    file_path_meta_field: str | None = "file_path",
    root_path: str | None = None,
    embed_media: bool = True,
    embed_file_with_content: bool = False,
    pdf_cache: PdfPages | None = None,
) -> Item:
    """One Document as one Item: its text, its media, or both interleaved (text first)."""
    if not isinstance(doc, Document):
        raise TypeError(f"expected a haystack Document, got {type(doc).__name__}")
    text = compose_text(
        doc,
        prefix=prefix,
        suffix=suffix,
        meta_fields_to_embed=meta_fields_to_embed,
        embedding_separator=embedding_separator,
    )
    media = None
    if embed_media:
        media = document_media(
            doc,
            has_text=text is not None,
            file_path_meta_field=file_path_meta_field,
            root_path=root_path,
            embed_file_with_content=embed_file_with_content,
            pdf_cache=pdf_cache,
        )
    title_value = doc.meta.get(title_meta_field) if title_meta_field else None
    title = str(title_value) if title_value is not None else None
    if media is not None:
        parts: tuple[str | Media, ...] = (text, media) if text else (media,)
        source = f"document {doc.id} ({media.name})"
    elif text is not None:
        parts, source = (text,), f"document {doc.id}"
    else:
        raise InputError(
            "document has no text and no media to embed",
            source=f"document {doc.id}",
            limit="content, a media blob or a media file in meta",
        )
    return Item(parts=parts, title=title, metadata={"source": source, "document_id": doc.id})


def _decode_b64(data: str, source: str) -> bytes:
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise MediaReadError("invalid base64 data", source=source) from exc


def source_media(value: Any, *, root_path: str | None = None) -> Media:
    """A query source as Media: a path (under ``root_path`` when set), an http(s)/gs URL,
    a ByteStream, an ImageContent or a FileContent."""
    if isinstance(value, Media):
        return value
    if isinstance(value, ByteStream):
        name = str(value.meta.get("file_path") or "<ByteStream>")
        return Media.from_bytes(value.data, value.mime_type, name=name)
    if isinstance(value, ImageContent):
        return Media.from_bytes(
            _decode_b64(value.base64_image, "<ImageContent>"),
            value.mime_type,
            name=str(value.meta.get("file_path") or "<ImageContent>"),
        )
    if isinstance(value, FileContent):
        name = value.filename or "<FileContent>"
        return Media.from_bytes(_decode_b64(value.base64_data, name), value.mime_type, name=name)
    if isinstance(value, str) and (
        urlparse(value).scheme in _REMOTE_SCHEMES or value.startswith("files/")
    ):
        return Media.from_url(value)
    if isinstance(value, (str, os.PathLike)):
        return Media.from_path(resolve_path(value, root_path, source=str(value)))
    raise InputError(
        f"cannot embed a {type(value).__name__} as media",
        limit="a path, an http(s) or gs:// URL, ByteStream, ImageContent or FileContent",
    )

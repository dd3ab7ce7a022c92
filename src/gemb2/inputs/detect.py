"""Is it media, and which: the answers every wrapper needs before it builds an Item.

A framework record names a file (a path in its metadata, a declared mime type) or holds
text that may not be words at all (a reader that decoded an image's bytes as text).
These functions answer from names, declared types and the data itself, so the
wrappers ask here instead of each keeping its own table of suffixes and types.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

from gemb2.inputs import probe
from gemb2.inputs.media import Media, mime_from_suffix

# The modalities of media the model takes (a piece's ``modality``, text and
# "interleaved" aside).
MEDIA_MODALITIES = frozenset(probe.SUPPORTED_MIME.values())
_HEAD = 1024  # bytes of a file compared with a text that may be those bytes read as text


def media_type(name: str | os.PathLike[str], declared: str | None = None) -> str | None:
    """The media type a file is declared as, when it is one the model takes; None means
    not media (text, or a type the model refuses).

    ``declared`` (a record's ``mime_type``) wins over the name's suffix, even when it
    declares text: a ``.png`` declared ``text/plain`` is text. The file is not opened."""
    mime = probe.canonical_mime(declared) if declared else None
    mime = mime or mime_from_suffix(os.fspath(name))
    return mime if mime and probe.modality_of(mime) else None


def sniff_file(path: str | os.PathLike[str]) -> str | None:
    """The media type of a file from its first bytes, when the model takes it; None for
    text and every other type. Reads at most 8 KiB."""
    with Path(path).open("rb") as f:
        head = f.read(8192)
    mime = probe.sniff_mime(head) if head else None
    return mime if mime and probe.modality_of(mime) else None


def is_file_read_as_text(text: str, path: str | os.PathLike[str]) -> bool:
    """Whether ``text`` is the file's bytes decoded as text, not words about it: what a
    reader with no parser for a type stores (LlamaIndex's ``SimpleDirectoryReader`` does
    it to images, audio and video without llama-index-readers-file). Reads the first KiB."""
    try:
        with open(path, "rb") as f:
            head = f.read(_HEAD + 1)
    except OSError:
        return False
    for errors in ("ignore", "replace"):
        decoded = head[:_HEAD].decode("utf-8", errors)
        # a multi-byte character cut at the end of the head may decode differently
        probe_text = decoded[:-1] if len(head) > _HEAD else decoded
        if len(probe_text) >= 4 and text.startswith(probe_text):
            return True
    return False


def content_hash(media: Sequence[Media]) -> str:
    """SHA-256 of what gets sent: the bytes, or the URI of media sent by reference. Two
    records with the same hash hold the same media, whatever their names."""
    h = hashlib.sha256()
    for m in media:
        data = m.read()
        h.update(data if data is not None else str(m.uri or m.name).encode())
    return h.hexdigest()

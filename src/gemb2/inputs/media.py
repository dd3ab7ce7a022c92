"""Media parts and Items: what the user hands us, and how it becomes one ``Content``.

An ``Item`` is text, one media file, or an interleaved list of both. Whatever it
holds, it becomes exactly one ``types.Content`` and so exactly one vector.
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union
from urllib.parse import unquote, urlparse

from google.genai import types

from gemb2.errors import InputError, MediaReadError, UnsupportedMediaError
from gemb2.inputs import probe

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage

FILES_API_PREFIXES = ("https://generativelanguage.googleapis.com/", "files/")
_SUFFIX_MIME = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".webp": "image/webp",
    ".heic": "image/heic",
    ".heif": "image/heif",
    ".mp3": "audio/mpeg",
    ".wav": "audio/wav",
    ".mp4": "video/mp4",
    ".m4v": "video/mp4",
    ".mov": "video/quicktime",
    ".pdf": "application/pdf",
}


def supported_types() -> str:
    return ", ".join(sorted(probe.SUPPORTED_MIME))


def mime_from_suffix(name: str) -> str | None:
    return _SUFFIX_MIME.get(Path(urlparse(name).path).suffix.lower())


@dataclass(frozen=True, eq=False)
class Media:
    """One media file: bytes in memory, or a remote URI the service reads itself.

    Build it with ``from_path``, ``from_bytes``, ``from_url`` or ``from_image``.
    ``metadata`` carries where it came from (path, page or time range of a piece).
    A media built with ``loader`` (and ``length``) is sent inline like bytes in memory,
    but its bytes are read only when needed (``read()``) and not kept: the indexer uses
    it so a long video's pieces wait on disk, not in memory, until their call is sent.
    """

    mime_type: str
    data: bytes | None = None
    uri: str | None = None
    name: str = "<bytes>"
    metadata: Mapping[str, Any] = field(default_factory=dict)
    loader: Callable[[], bytes] | None = field(default=None, repr=False)
    length: int = 0

    @property
    def modality(self) -> str:
        modality = probe.modality_of(self.mime_type)
        if modality is None:  # constructors never let this happen
            raise UnsupportedMediaError(f"unsupported type {self.mime_type}", source=self.name)
        return modality

    @classmethod
    def from_bytes(
        cls,
        data: bytes,
        mime_type: str | None = None,
        *,
        name: str = "<bytes>",
        metadata: Mapping[str, Any] | None = None,
    ) -> Media:
        """Sniff the type from the content; a declared type must agree with it."""
        if not data:
            raise MediaReadError("file is empty (0 bytes)", source=name)
        sniffed = probe.sniff_mime(data)
        declared = probe.canonical_mime(mime_type) if mime_type else None
        if sniffed is None:
            what = "text" if probe.looks_like_text(data[:4096]) else "not a recognised media type"
            named = f" although it is named or declared as {declared}" if declared else ""
            raise UnsupportedMediaError(
                f"content is {what}{named}",
                source=name,
                limit=f"supported: {supported_types()}",
            )
        if declared and probe.modality_of(declared) not in (None, probe.modality_of(sniffed)):
            raise UnsupportedMediaError(
                f"content is {sniffed} but it was declared or named as {declared}", source=name
            )
        if probe.modality_of(sniffed) is None:
            raise UnsupportedMediaError(
                f"content is {sniffed}, which the model does not accept",
                source=name,
                limit=f"supported: {supported_types()}",
            )
        return cls(mime_type=sniffed, data=data, name=name, metadata=dict(metadata or {}))

    @classmethod
    def from_path(
        cls, path: str | os.PathLike[str], *, metadata: Mapping[str, Any] | None = None
    ) -> Media:
        p = Path(path)
        name = str(p)
        probe.check_regular_file(p, name)
        try:
            data = p.read_bytes()
        except FileNotFoundError as exc:
            raise MediaReadError("no such file", source=name) from exc
        except IsADirectoryError as exc:
            raise MediaReadError("is a directory, not a file", source=name) from exc
        except OSError as exc:
            raise MediaReadError(f"cannot read file: {exc.strerror or exc}", source=name) from exc
        meta = {"source": name, **(metadata or {})}
        return cls.from_bytes(data, mime_from_suffix(name), name=name, metadata=meta)

    @classmethod
    def from_url(
        cls,
        url: str,
        mime_type: str | None = None,
        *,
        fetch: bool | None = None,
        timeout: float = 30.0,
        metadata: Mapping[str, Any] | None = None,
    ) -> Media:
        """gs:// and Files API URIs are passed to the service by reference; other
        http(s) URLs are downloaded (``fetch``) and sent inline."""
        parsed = urlparse(url)
        if parsed.scheme not in ("http", "https", "gs") and not url.startswith("files/"):
            raise InputError(
                f"URL scheme {parsed.scheme or '(none)'!r} is not supported",
                source=url,
                limit="http, https, gs:// or a Files API URI",
            )
        by_reference = parsed.scheme == "gs" or url.startswith(FILES_API_PREFIXES)
        if fetch is None:
            fetch = not by_reference
        meta = {"source": url, **(metadata or {})}
        if not fetch:
            mime = probe.canonical_mime(mime_type) if mime_type else mime_from_suffix(url)
            if mime is None or probe.modality_of(mime) is None:
                raise UnsupportedMediaError(
                    "cannot tell the media type of this URI; pass mime_type",
                    source=url,
                    limit=f"supported: {supported_types()}",
                )
            return cls(mime_type=mime, uri=url, name=url, metadata=meta)
        import httpx

        try:
            response = httpx.get(url, timeout=timeout, follow_redirects=True)
            response.raise_for_status()
        except httpx.HTTPError as exc:
            raise MediaReadError(f"cannot download: {exc}", source=url) from exc
        declared = mime_type or response.headers.get("content-type") or mime_from_suffix(url)
        if declared and probe.modality_of(declared) is None:
            declared = mime_from_suffix(url)
        return cls.from_bytes(response.content, declared, name=url, metadata=meta)

    @classmethod
    def from_image(
        cls,
        image: PILImage,
        *,
        name: str = "<PIL image>",
        metadata: Mapping[str, Any] | None = None,
    ) -> Media:
        buf = io.BytesIO()
        fmt = "JPEG" if image.format == "JPEG" else "PNG"
        img = image if fmt == "PNG" or image.mode in ("RGB", "L") else image.convert("RGB")
        img.save(buf, format=fmt)
        return cls(
            mime_type="image/jpeg" if fmt == "JPEG" else "image/png",
            data=buf.getvalue(),
            name=name,
            metadata=dict(metadata or {}),
        )

    @classmethod
    def deferred(
        cls,
        mime_type: str,
        loader: Callable[[], bytes],
        length: int,
        *,
        name: str = "<bytes>",
        metadata: Mapping[str, Any] | None = None,
    ) -> Media:
        """Inline media whose ``length`` bytes ``loader()`` returns when they are needed."""
        return cls(
            mime_type=mime_type,
            name=name,
            metadata=dict(metadata or {}),
            loader=loader,
            length=length,
        )

    @property
    def is_inline(self) -> bool:
        """Sent as bytes in the request (in memory or deferred), not by reference."""
        return self.data is not None or self.loader is not None

    def read(self) -> bytes | None:
        """The inline bytes (read now for deferred media, not kept), or None for a URI."""
        if self.data is not None:
            return self.data
        if self.loader is not None:
            data = self.loader()
            if len(data) != self.length:
                raise MediaReadError(
                    f"expected {self.length} bytes, read {len(data)}", source=self.name
                )
            return data
        return None

    @cached_property
    def digest(self) -> str:
        h = hashlib.sha256(self.mime_type.encode())
        h.update(b"\0")
        data = self.read()
        h.update(data if data is not None else (self.uri or "").encode())
        return h.hexdigest()

    @property
    def size(self) -> int:
        if self.data is not None:
            return len(self.data)
        return self.length if self.loader is not None else 0

    def to_part(self) -> types.Part:
        data = self.read()
        if data is not None:
            return types.Part(inline_data=types.Blob(mime_type=self.mime_type, data=data))
        return types.Part(file_data=types.FileData(file_uri=self.uri, mime_type=self.mime_type))

    def __repr__(self) -> str:
        where = self.uri or self.name
        return f"Media({self.mime_type}, {where!r}, {self.size} bytes)"


PartLike = Union[str, Media, Path, "PILImage"]
ItemLike = Union[PartLike, "Item", Sequence[PartLike]]


@dataclass(frozen=True, eq=False)
class Item:
    """One thing to embed: text, one media, or text and media interleaved."""

    parts: tuple[str | Media, ...]
    title: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)
    # the parts by kind, split once: limits, conditioning and batching all ask for them
    # (tuples, not a cached_property's lists: fewer objects for the garbage collector)
    media: tuple[Media, ...] = field(init=False, repr=False, compare=False)
    texts: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        parts = self.parts
        object.__setattr__(self, "media", tuple([p for p in parts if isinstance(p, Media)]))
        object.__setattr__(self, "texts", tuple([p for p in parts if isinstance(p, str)]))

    @classmethod
    def of(cls, value: ItemLike, *, title: str | None = None) -> Item:
        """Coerce user input. A ``str`` is always text; use ``Path`` for files."""
        if isinstance(value, Item):
            return value
        if isinstance(value, (str, Media, os.PathLike)) or _is_pil(value):
            return cls(parts=(_part(value),), title=title)
        if isinstance(value, (bytes, bytearray)):
            return cls(parts=(Media.from_bytes(bytes(value)),), title=title)
        if isinstance(value, Iterable):
            return cls(parts=tuple(_part(v) for v in value), title=title)
        raise InputError(f"cannot embed a {type(value).__name__}")

    @classmethod
    def from_path(cls, path: str | os.PathLike[str], **metadata: Any) -> Item:
        """A file on disk: plain text files become text, media become media."""
        p = Path(path)
        probe.check_regular_file(p)
        if p.suffix.lower() in probe.TEXT_SUFFIXES:
            data = probe.read_file(p)
            if probe.sniff_mime(data) is None:
                if not probe.looks_like_text(data):
                    raise MediaReadError(
                        "text file is not valid UTF-8 or holds NUL bytes", source=str(p)
                    )
                return cls(
                    parts=(data.decode("utf-8"),),
                    metadata={"source": str(p), "modality": "text", **metadata},
                )
        media = Media.from_path(p)
        return cls(
            parts=(media,), metadata={**media.metadata, "modality": media.modality, **metadata}
        )

    @classmethod
    def from_uri(cls, uri: str | os.PathLike[str]) -> Item:
        """A path, ``file://``, ``http(s)://`` or ``gs://`` URI (a framework's "image URI")."""
        if isinstance(uri, os.PathLike):
            return cls.from_path(uri)
        parsed = urlparse(uri)
        if parsed.scheme in ("http", "https", "gs"):
            return cls(parts=(Media.from_url(uri),), metadata={"source": uri})
        if parsed.scheme == "file":
            return cls.from_path(Path(unquote(parsed.path)))
        if "://" in uri:  # a one-letter "scheme" is a Windows drive, so only refuse real URLs
            raise InputError(
                f"URI scheme {parsed.scheme!r} is not supported",
                source=uri,
                limit="a path, file://, http(s):// or gs://",
            )
        return cls.from_path(Path(uri))

    @property
    def text(self) -> str:  # not cached: cheaper than a cached_property's first read (3.11 locks)
        texts = self.texts
        return texts[0] if len(texts) == 1 else "\n".join(texts)

    @property
    def is_text_only(self) -> bool:
        return not self.media

    @property
    def modalities(self) -> list[str]:
        seen: list[str] = []
        for p in self.parts:
            m = "text" if isinstance(p, str) else p.modality
            if m not in seen:
                seen.append(m)
        return seen

    @property
    def modality(self) -> str:
        """'text', a media modality, or 'interleaved'."""
        if not self.media:
            return "text"
        mods = self.modalities
        return mods[0] if len(mods) == 1 else "interleaved"

    @property
    def name(self) -> str:
        if "source" in self.metadata:
            return str(self.metadata["source"])
        media = self.media
        if media:
            return media[0].name
        text = self.text
        return repr(text[:40] + ("..." if len(text) > 40 else ""))

    def fingerprint(self) -> str:
        """Content address: equal items share it, whatever their metadata."""
        h = hashlib.sha256()
        for p in self.parts:
            if isinstance(p, str):
                h.update(b"T" + hashlib.sha256(p.encode("utf-8", "surrogatepass")).digest())
            else:
                h.update(b"M" + bytes.fromhex(p.digest))
        h.update(b"title:" + (self.title or "").encode())
        return h.hexdigest()

    def to_content(self, text_override: str | None = None) -> types.Content:
        """One Content; ``text_override`` replaces the text of a text-only item (prefixing)."""
        if text_override is not None:
            return types.Content(role="user", parts=[types.Part(text=text_override)])
        parts = [types.Part(text=p) if isinstance(p, str) else p.to_part() for p in self.parts]
        return types.Content(role="user", parts=parts)


def _is_pil(value: object) -> bool:
    try:
        from PIL.Image import Image as PILImage
    except ImportError:  # pragma: no cover - Pillow is a dependency
        return False
    return isinstance(value, PILImage)


def _part(value: object) -> str | Media:
    if isinstance(value, str):
        return value
    if isinstance(value, Media):
        return value
    if isinstance(value, os.PathLike):
        return Media.from_path(value)
    if isinstance(value, (bytes, bytearray)):
        return Media.from_bytes(bytes(value))
    if _is_pil(value):
        return Media.from_image(value)  # type: ignore[arg-type]
    raise InputError(f"cannot embed a part of type {type(value).__name__}")


def as_items(values: Iterable[ItemLike]) -> list[Item]:
    """Coerce a list of inputs, naming the index of any that cannot be used."""
    items: list[Item] = []
    for i, value in enumerate(values):
        try:
            items.append(Item.of(value))
        except InputError as exc:
            raise exc.at(i) from exc
    return items

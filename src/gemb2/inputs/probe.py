"""Reading facts out of media bytes: mime type, PDF pages, audio/video duration.

Everything here works on bytes already in memory or on a path, and raises
``MediaReadError`` for corrupt or truncated files.
"""

from __future__ import annotations

import io
import math
import os
import stat
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import filetype

from gemb2.errors import MediaReadError
from gemb2.model.catalog import DEFAULT_MAX_IMAGE_PIXELS

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage

# canonical mime type -> modality, for the types Gemini Embedding 2 accepts
SUPPORTED_MIME: dict[str, str] = {
    "image/png": "image",
    "image/jpeg": "image",
    "image/webp": "image",
    "image/heic": "image",
    "image/heif": "image",
    "audio/mpeg": "audio",
    "audio/wav": "audio",
    "video/mp4": "video",
    "video/quicktime": "video",
    "application/pdf": "pdf",
}

_ALIASES = {
    "image/jpg": "image/jpeg",
    "audio/mp3": "audio/mpeg",
    "audio/x-wav": "audio/wav",
    "audio/wave": "audio/wav",
    "audio/vnd.wave": "audio/wav",
    "video/mov": "video/quicktime",
    "video/x-m4v": "video/mp4",
}

TEXT_SUFFIXES = frozenset({".txt", ".md", ".markdown", ".rst", ".csv", ".json", ".html", ".py"})


def canonical_mime(mime: str) -> str:
    mime = mime.split(";")[0].strip().lower()
    return _ALIASES.get(mime, mime)


def sniff_mime(data: bytes) -> str | None:
    """Mime type from the content's magic bytes, canonicalised; None when unknown."""
    kind = filetype.guess(data[:8192])
    if kind is None:
        return None
    mime = canonical_mime(kind.mime)
    if mime == "audio/mp4" or mime == "video/x-m4a":
        return "audio/mp4"
    return mime


def modality_of(mime: str) -> str | None:
    return SUPPORTED_MIME.get(canonical_mime(mime))


def looks_like_text(data: bytes) -> bool:
    """UTF-8 without NUL bytes."""
    if b"\x00" in data:
        return False
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def check_regular_file(path: str | Path, name: str | None = None) -> None:
    """Refuse a FIFO, socket or device before reading it: the read would block or never end.

    A path that cannot be stat'ed passes; reading it then reports why."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        raise MediaReadError(
            "not a regular file (a FIFO, socket or device)", source=name or str(path)
        )


def pdf_page_count(data: bytes, name: str = "<pdf>") -> int:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        return len(reader.pages)
    except (PdfReadError, ValueError, KeyError, OSError, TypeError) as exc:
        raise MediaReadError(f"cannot read PDF: {exc}", source=name) from exc


@dataclass(frozen=True)
class AVInfo:
    """``duration`` is what the file really holds (its packets; a WAV's samples), which
    limits and splitting use; ``declared`` is what its header states (0: none), which can
    lie: a header claiming 1 s over 200 s of samples must not pass as 1 s."""

    duration: float
    has_audio: bool
    has_video: bool
    declared: float = 0.0


def av_info(source: bytes | str | Path, name: str = "<media>") -> AVInfo:
    """Duration and streams of an audio or video file, measured from its data."""
    import av

    src: object = io.BytesIO(source) if isinstance(source, bytes) else str(source)
    try:
        # the accepted containers (MP4/MOV, WAV, MP3) state their streams in their headers:
        # FFmpeg's default 5 MB probe decodes packets for nothing (9 ms a WAV file, 0.7 ms
        # with 4 KB); the duration is then measured from the packets, not the header
        with av.open(src, mode="r", options={"probesize": "4096"}) as container:
            has_audio = any(s.type == "audio" for s in container.streams)
            has_video = any(s.type == "video" for s in container.streams)
            declared = _duration(container) or 0.0
            if "wav" in container.format.name.split(","):
                # FFmpeg reads only the samples the data chunk declares: measure the file
                layout = wav_layout(source if isinstance(source, bytes) else Path(source), name)
                duration = layout.seconds if layout and layout.seconds else declared
            else:
                duration = real_seconds(_packet_end(container), declared)
    except (av.FFmpegError, OSError, ValueError, EOFError) as exc:
        raise MediaReadError(f"cannot read media container: {exc}", source=name) from exc
    if not (has_audio or has_video):
        raise MediaReadError("no audio or video stream found", source=name)
    if duration <= 0:
        raise MediaReadError("media has no measurable duration (truncated?)", source=name)
    return AVInfo(duration=duration, has_audio=has_audio, has_video=has_video, declared=declared)


# MP3 frames carry the encoder's delay and padding (up to ~0.2 s), which the header's
# duration (LAME/Xing) leaves out: within that, the header is right; beyond it, it lies
_PADDING_SECONDS = 0.25


def real_seconds(measured: float, declared: float) -> float:
    """The duration to trust: ``measured`` from the packets, unless the header's
    ``declared`` is just short of it by the frames' padding."""
    if declared and declared <= measured <= declared + _PADDING_SECONDS:
        return declared
    return measured


def _duration(container: object) -> float | None:
    import av

    dur = getattr(container, "duration", None)
    if dur:
        return float(dur) / av.time_base
    best = 0.0
    for stream in container.streams:  # type: ignore[attr-defined]
        if stream.duration and stream.time_base:
            best = max(best, float(stream.duration * stream.time_base))
    return best or None


def _packet_end(container: Any) -> float:
    """Seconds from the first packet to the end of the last, read from the packets
    (demuxed, never decoded). MP4/MOV index every sample, so each stream's last packets
    are reached by a seek; other containers are read through (about 3,000 MP3 frames in
    80 s). Integer timestamps until the end: Fraction arithmetic per packet cost 3x."""
    import av

    streams = [s for s in container.streams if s.type in ("audio", "video")]
    first: dict[int, int] = {}
    last: dict[int, int] = {}

    def read(*wanted: Any) -> None:
        for packet in container.demux(*wanted):
            ts = packet.pts if packet.pts is not None else packet.dts
            if ts is None:
                continue
            i = packet.stream_index
            end = ts + (packet.duration or 0)
            if end > last.get(i, end - 1):
                last[i] = end
            if i not in first or ts < first[i]:
                first[i] = ts

    indexed = "mp4" in container.format.name.split(",")
    if indexed:
        try:
            for s in streams:  # from each stream's last keyframe to its end
                first[s.index] = s.start_time if s.start_time is not None else 0
                container.seek(2**62, stream=s, backward=True)
                read(s)
        except av.FFmpegError:  # e.g. a fragmented MP4 without an index: read it through
            indexed = False
            first.clear()
            last.clear()
            container.seek(0)
    if not indexed:
        read(*streams)
    ends = [
        (float(first[s.index] * s.time_base), float(last[s.index] * s.time_base))
        for s in streams
        if s.index in last and s.time_base
    ]
    if not ends:
        return 0.0
    return max(e for _, e in ends) - min(b for b, _ in ends)


@dataclass(frozen=True)
class WavLayout:
    """Where a WAV's samples are and how many it really holds.

    ``declared_bytes`` is the data chunk's size field; ``data_bytes`` is what the file
    holds: the same, unless more than a second of bytes follows the declared end and is
    not a chunk or a tag (a recorder that never rewrote its header, or a header that lies).
    FFmpeg, and so probably the service, reads only the declared part."""

    data_offset: int
    declared_bytes: int
    data_bytes: int
    frame_bytes: int  # the fmt chunk's block align (PCM: every channel of one sample)
    byte_rate: int  # bytes a second (PCM: sample rate x block align, as FFmpeg counts)

    @property
    def seconds(self) -> float:
        return self.data_bytes / self.byte_rate

    @property
    def declared_seconds(self) -> float:
        return self.declared_bytes / self.byte_rate

    @property
    def lies(self) -> bool:
        return self.data_bytes != self.declared_bytes

    def repair(self) -> dict[int, bytes]:
        """Header bytes to overwrite (offset -> bytes) so the sizes state the real data."""
        riff = self.data_offset + self.data_bytes - 8
        return {
            4: struct.pack("<I", min(riff, 0xFFFFFFFF)),
            self.data_offset - 4: struct.pack("<I", self.data_bytes),
        }


def wav_layout(source: bytes | BinaryIO | Path, name: str = "<wav>") -> WavLayout | None:
    """The data chunk of a RIFF/WAVE file, checked against the file's real size.

    Refuses a truncated WAV (FFmpeg silently plays what is there). None for RF64 and for
    streamed WAVs whose sizes are 0 or 0xFFFFFFFF (FFmpeg reads those to the end).
    Reads the chunk headers only."""
    if isinstance(source, Path):
        try:
            with source.open("rb") as fh:
                return wav_layout(fh, name)
        except OSError as exc:
            raise MediaReadError(f"cannot read file: {exc.strerror or exc}", source=name) from exc
    f: BinaryIO = io.BytesIO(source) if isinstance(source, bytes) else source
    size = len(source) if isinstance(source, bytes) else os.fstat(f.fileno()).st_size
    f.seek(0)
    head = f.read(12)
    if len(head) < 12 or head[:4] not in (b"RIFF", b"RF64") or head[8:12] != b"WAVE":
        raise MediaReadError("not a RIFF/WAVE file", source=name)
    if head[:4] == b"RF64":
        return None  # 64-bit sizes live in the ds64 chunk; FFmpeg checks those
    riff = struct.unpack("<I", head[4:8])[0]
    if riff not in (0, 0xFFFFFFFF) and riff + 8 > size:
        raise MediaReadError(
            f"WAV is truncated: header declares {riff + 8} bytes, file has {size}", source=name
        )
    frame_bytes = rate = byte_rate = 0
    pos = 12
    while pos + 8 <= size:
        f.seek(pos)
        chunk_id, chunk_size = struct.unpack("<4sI", f.read(8))
        if chunk_id == b"fmt " and chunk_size >= 14:
            tag, _, rate, byte_rate, frame_bytes = struct.unpack("<HHIIH", f.read(14))
            if tag in (1, 3, 0xFFFE):  # PCM, float, extensible: FFmpeg's own arithmetic
                byte_rate = rate * frame_bytes
        if chunk_id == b"data":
            if chunk_size in (0, 0xFFFFFFFF):
                return None
            data_offset = pos + 8
            if data_offset + chunk_size > size:
                raise MediaReadError(
                    f"WAV is truncated: data chunk declares {chunk_size} bytes, "
                    f"file has {size - data_offset}",
                    source=name,
                )
            if not (frame_bytes and byte_rate):
                return None  # no usable fmt chunk before the data: FFmpeg decides
            real = chunk_size
            after = data_offset + chunk_size + (chunk_size & 1)
            rest = size - after
            if rest >= byte_rate and not _chunks_to_end(f, after, size):
                real = (size - data_offset) // frame_bytes * frame_bytes
            return WavLayout(data_offset, chunk_size, real, frame_bytes, byte_rate)
        pos += 8 + chunk_size + (chunk_size & 1)
    raise MediaReadError("WAV has no data chunk", source=name)


def _chunks_to_end(f: BinaryIO, pos: int, size: int) -> bool:
    """Whether the bytes from ``pos`` are RIFF chunks (LIST, id3, ...) or an ID3 tag."""
    f.seek(pos)
    if f.read(3) in (b"ID3", b"TAG"):
        return True
    while size - pos >= 8:
        f.seek(pos)
        chunk_id, chunk_size = struct.unpack("<4sI", f.read(8))
        if not all(0x20 <= c <= 0x7E for c in chunk_id) or pos + 8 + chunk_size > size + 1:
            return False
        pos += 8 + chunk_size + (chunk_size & 1)
    return True


def check_wav(source: bytes | BinaryIO, name: str = "<wav>", size: int | None = None) -> None:
    """Refuse a truncated WAV (see ``wav_layout``); ``size`` is ignored (measured)."""
    wav_layout(source, name)


# Pillow's plugin for each type: opened directly, so Pillow's own size check (a
# DecompressionBombWarning printed past 89.5 MP, an error past 179 MP) is not the one
# that decides; ``max_pixels`` is (``Limits.max_image_pixels``)
_PIL_PLUGINS = {
    "image/png": ("PngImagePlugin", "PngImageFile"),
    "image/jpeg": ("JpegImagePlugin", "JpegImageFile"),
    "image/webp": ("WebPImagePlugin", "WebPImageFile"),
}


def decode_image(
    data: bytes, name: str = "<image>", max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS
) -> tuple[PILImage, tuple[int, int]]:
    """The image decoded within a pixel budget, and its full size.

    The size is read from the header first (a lazy open). Within ``max_pixels`` the
    image is decoded in full; a baseline JPEG over it is decoded at 1/2, 1/4 or 1/8
    scale by libjpeg (``Image.draft``: memory and the result within the budget, every
    byte still checked); anything else over it is refused, before any pixel memory is
    allocated (a 657 KB PNG can declare 13000x13000 pixels, 0.7 GB decoded)."""
    import importlib

    from PIL import UnidentifiedImageError

    mime = sniff_mime(data)
    plugin = _PIL_PLUGINS.get(mime or "")
    try:
        if plugin is None:  # not PNG, JPEG or WebP, whatever it is named
            raise UnidentifiedImageError
        module = importlib.import_module(f"PIL.{plugin[0]}")
        img: Any = getattr(module, plugin[1])(io.BytesIO(data))
    except (UnidentifiedImageError, SyntaxError) as exc:  # its message is only a repr
        raise MediaReadError("cannot decode image: not a valid image file", source=name) from exc
    except (OSError, ValueError, EOFError, struct.error) as exc:
        raise MediaReadError(f"cannot decode image: {exc}", source=name) from exc
    width, height = img.size
    pixels = width * height
    if pixels > max_pixels:
        scale = _draft_scale(img, width, height, max_pixels)
        if scale is None:
            img.close()
            raise _too_many_pixels(img, width, height, max_pixels, name)
        img.draft(None, (max(1, width // scale), max(1, height // scale)))
    try:
        img.load()
    except (OSError, SyntaxError, ValueError, EOFError, struct.error) as exc:
        raise MediaReadError(f"cannot decode image: {exc}", source=name) from exc
    return img, (width, height)


def _draft_scale(img: Any, width: int, height: int, max_pixels: int) -> int | None:
    """The least JPEG DCT scale (2, 4 or 8) whose result fits the budget, or None.

    A progressive JPEG keeps every coefficient of the full image in memory whatever the
    scale (libjpeg), so only a baseline one can be reduced."""
    if img.format != "JPEG" or img.info.get("progressive") or img.info.get("progression"):
        return None
    for scale in (2, 4, 8):
        if math.ceil(width / scale) * math.ceil(height / scale) <= max_pixels:
            return scale
    return None


def _too_many_pixels(img: Any, width: int, height: int, max_pixels: int, name: str) -> Exception:
    pixels = width * height
    how = ""
    if img.format == "JPEG":
        progressive = img.info.get("progressive") or img.info.get("progression")
        how = " (a progressive JPEG cannot be decoded smaller)" if progressive else " at 1/8 scale"
    decoded = pixels * 4  # Pillow holds RGB and RGBA as 4 bytes a pixel
    size = f"{decoded / 1e9:.1f} GB" if decoded >= 1e9 else f"{max(1, round(decoded / 1e6))} MB"
    return MediaReadError(
        f"image is {width}x{height} = {pixels:,} pixels: too large to decode safely{how} "
        f"(about {size} decoded)",
        source=name,
        limit=f"{max_pixels:,} pixels (Limits.max_image_pixels); downscale the image or raise "
        "the budget (a baseline JPEG over it is decoded at 1/2 to 1/8 scale)",
    )


def check_image(
    data: bytes, name: str = "<image>", max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS
) -> tuple[int, int] | None:
    """Decode the image (within ``max_pixels``, see ``decode_image``) so corrupt or
    truncated files fail here, not at the service; its full size.

    Pillow cannot decode HEIC/HEIF without a plugin: those are left to the service (None)."""
    if sniff_mime(data) in ("image/heic", "image/heif"):
        return None
    img, size = decode_image(data, name, max_pixels)
    img.close()
    return size


def read_file(path: Path, name: str | None = None) -> bytes:
    """A file's bytes, or ``MediaReadError`` naming it and the OS's reason."""
    try:
        return path.read_bytes()
    except OSError as exc:
        raise MediaReadError(
            f"cannot read file: {exc.strerror or exc}", source=name or str(path)
        ) from exc

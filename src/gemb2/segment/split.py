"""Splitting inputs that are over the model's per-item limits into pieces that fit.

Shared by every wrapper and the CLI. PDFs split into page ranges, audio and video
into overlapping time segments (stream copy, no re-encoding, wherever the
keyframes allow), text into token-bounded chunks at paragraph, sentence or word
boundaries, and images are decoded within a pixel budget and downscaled. Durations
are measured from the data, not the header. Every piece keeps where it came from
(page, time or character range) so a search hit can point back into the source.

Corrupt or truncated input raises ``MediaReadError`` naming the file; types the
model does not accept raise ``UnsupportedMediaError``.
"""

from __future__ import annotations

import bisect
import contextlib
import io
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from typing import Any

from gemb2.errors import InputError, LimitExceededError, MediaReadError, UnsupportedMediaError
from gemb2.inputs import probe
from gemb2.inputs.tokens import estimate_tokens, utf8_len, word_count
from gemb2.model.catalog import DEFAULT_MAX_IMAGE_PIXELS, Limits

__all__ = [
    "Segment",
    "fit_image",
    "segment_file",
    "shrink_image",
    "split_media",
    "split_pdf",
    "split_text",
]


@dataclass(frozen=True)
class Segment:
    """One piece of a source that fits the model's limits, with where it came from."""

    data: bytes | None
    text: str | None
    mime_type: str
    modality: str
    source: str
    index: int
    count: int | None
    page_start: int | None = None
    page_end: int | None = None
    start_seconds: float | None = None
    end_seconds: float | None = None
    char_start: int | None = None
    char_end: int | None = None

    def metadata(self) -> dict[str, object]:
        """Flat, JSON-able: source, modality, mime type, index and whichever ranges are set."""
        meta: dict[str, object] = {
            "source": self.source,
            "modality": self.modality,
            "mime_type": self.mime_type,
            "index": self.index,
        }
        for key in (
            "count",
            "page_start",
            "page_end",
            "start_seconds",
            "end_seconds",
            "char_start",
            "char_end",
        ):
            value = getattr(self, key)
            if value is not None:
                meta[key] = value
        return meta


def _supported_list() -> str:
    return (
        ", ".join(sorted(probe.SUPPORTED_MIME))
        + ", text ("
        + ", ".join(sorted(probe.TEXT_SUFFIXES))
        + ")"
    )


# =========================================================================== PDF


def split_pdf(
    source: bytes | str | Path, *, max_pages: int = 6, name: str | None = None
) -> list[Segment]:
    """Split a PDF into pieces of at most ``max_pages`` pages, each a valid PDF.

    A PDF that already fits comes back as one piece holding the original bytes.
    """
    if max_pages < 1:
        raise ValueError("max_pages must be at least 1")
    if isinstance(source, bytes):
        data, name = source, name or "<pdf>"
    else:
        name = name or str(source)
        data = probe.read_file(Path(source), name)

    from pypdf import PdfReader, PdfWriter

    # pypdf raises many exception types on damaged files (PdfReadError, KeyError,
    # ValueError, AttributeError, ...): any of them means the file is unreadable.
    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted and not reader.decrypt(""):
            raise MediaReadError("PDF is encrypted", source=name)
        total = len(reader.pages)
        if total == 0:
            raise MediaReadError("PDF has no pages", source=name)
        if total <= max_pages:
            return [
                Segment(
                    data, None, "application/pdf", "pdf", name, 0, 1, page_start=1, page_end=total
                )
            ]
        count = math.ceil(total / max_pages)
        out: list[Segment] = []
        for index in range(count):
            first = index * max_pages
            last = min(first + max_pages, total)
            writer = PdfWriter()
            for page_no in range(first, last):
                writer.add_page(reader.pages[page_no])
            buf = io.BytesIO()
            writer.write(buf)
            out.append(
                Segment(
                    buf.getvalue(),
                    None,
                    "application/pdf",
                    "pdf",
                    name,
                    index,
                    count,
                    page_start=first + 1,
                    page_end=last,
                )
            )
        return out
    except MediaReadError:
        raise
    except Exception as exc:
        raise MediaReadError(f"cannot read PDF: {exc}", source=name) from exc


# =========================================================================== text

# After a sentence end (with closing quotes/brackets) and its whitespace, or after a newline run.
_BREAK = re.compile(r"[.!?…。！？][\"'”’)\]]*\s+|\n\s*")
_SPACE = re.compile(r"\s+")

# boundary strength at the end of an atom
_CHAR, _WORDB, _SENTENCE, _LINE, _PARAGRAPH, _END = -1, 0, 1, 2, 3, 4


@dataclass
class _Atom:
    start: int
    end: int
    strength: int
    nbytes: int = 0
    nwords: int = 0


def _cost(nbytes: int, nwords: int) -> int:
    """``estimate_tokens`` from its two additive counts (bytes and word-like runs)."""
    if nbytes == 0:
        return 0
    return max(math.ceil(nbytes / 4), math.ceil(nwords * 4 / 3))


def _counted(text: str, start: int, end: int, strength: int) -> _Atom:
    piece = text[start:end]
    return _Atom(start, end, strength, utf8_len(piece), word_count(piece))


def _break_strength(sep: str) -> int:
    newlines = sep.count("\n")
    if newlines >= 2:
        return _PARAGRAPH
    if newlines == 1:
        return _LINE
    return _SENTENCE


def _atoms(text: str, max_tokens: int) -> list[_Atom]:
    """Tile ``text`` with sentence-sized atoms, each within ``max_tokens``; sentences
    that are too long are cut at words, words that are too long at characters.
    Atoms end after their trailing whitespace, so no word straddles two atoms and
    the counts of neighbouring atoms add up (character cuts only over-count)."""
    atoms: list[_Atom] = []
    pos = 0
    spans: list[tuple[int, int, int]] = []
    for m in _BREAK.finditer(text):
        if m.end() > pos:
            spans.append((pos, m.end(), _break_strength(m.group())))
            pos = m.end()
    if pos < len(text):
        spans.append((pos, len(text), _END))
    for start, end, strength in spans:
        atom = _counted(text, start, end, strength)
        if _cost(atom.nbytes, atom.nwords) <= max_tokens:
            atoms.append(atom)
            continue
        # too long a sentence: cut at whitespace
        wpos = start
        words: list[tuple[int, int, int]] = []
        for m in _SPACE.finditer(text, start, end):
            if m.end() > wpos and m.end() < end:
                words.append((wpos, m.end(), _WORDB))
                wpos = m.end()
        words.append((wpos, end, strength))
        for wstart, wend, wstrength in words:
            watom = _counted(text, wstart, wend, wstrength)
            if _cost(watom.nbytes, watom.nwords) <= max_tokens:
                atoms.append(watom)
            else:
                atoms.extend(_hard_cut(text, wstart, wend, wstrength, max_tokens))
    return atoms


def _hard_cut(text: str, start: int, end: int, strength: int, max_tokens: int) -> list[_Atom]:
    """Cut one over-long word into the longest character runs that fit."""
    out: list[_Atom] = []
    while start < end:
        lo, hi = start + 1, end
        while lo < hi:  # largest stop with estimate <= max_tokens
            mid = (lo + hi + 1) // 2
            if estimate_tokens(text[start:mid]) <= max_tokens:
                lo = mid
            else:
                hi = mid - 1
        out.append(_counted(text, start, lo, strength if lo == end else _CHAR))
        start = lo
    return out


def split_text(
    text: str, *, max_tokens: int, overlap_tokens: int = 0, name: str | None = None
) -> list[Segment]:
    """Chunks of at most ``max_tokens`` (by ``estimate_tokens``), cut at the strongest
    boundary available (paragraph, line, sentence, word, character), consecutive
    chunks sharing about ``overlap_tokens`` of text. ``text[char_start:char_end]``
    is exactly each chunk; chunks are stripped of surrounding whitespace."""
    if max_tokens < 1:
        raise ValueError("max_tokens must be at least 1")
    if overlap_tokens < 0 or overlap_tokens >= max_tokens:
        raise ValueError("overlap_tokens must be in 0..max_tokens-1")
    name = name or "<text>"
    atoms = _atoms(text, max_tokens)
    n = len(atoms)
    # prefix sums of the additive counts, so any atom range costs O(1)
    pb = [0] * (n + 1)
    pw = [0] * (n + 1)
    for i, a in enumerate(atoms):
        pb[i + 1] = pb[i] + a.nbytes
        pw[i + 1] = pw[i] + a.nwords

    def cost(i: int, j: int) -> int:  # atoms i..j inclusive
        return _cost(pb[j + 1] - pb[i], pw[j + 1] - pw[i])

    spans: list[tuple[int, int]] = []
    i = 0
    while i < n:
        j = i
        while j + 1 < n and cost(i, j + 1) <= max_tokens:
            j += 1
        end = j
        if j < n - 1:
            # prefer the strongest boundary in the chunk's second half
            full = cost(i, j)
            best = j
            for k in range(j, i - 1, -1):
                if cost(i, k) * 2 < full:
                    break
                if atoms[k].strength > atoms[best].strength:
                    best = k
            end = best
        start_char, end_char = atoms[i].start, atoms[end].end
        chunk = text[start_char:end_char]
        stripped = chunk.strip()
        if stripped:
            lead = len(chunk) - len(chunk.lstrip())
            spans.append((start_char + lead, start_char + lead + len(stripped)))
        if end == n - 1:
            break
        nxt = end + 1
        if overlap_tokens:
            for k in range(i + 1, end + 1):
                if cost(k, end) <= overlap_tokens:
                    nxt = k
                    break
        i = nxt

    count = len(spans)
    return [
        Segment(
            None,
            text[s:e],
            "text/plain",
            "text",
            name,
            index,
            count,
            char_start=s,
            char_end=e,
        )
        for index, (s, e) in enumerate(spans)
    ]


# =========================================================================== images

_PIL_FORMATS = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}


def fit_image(
    data: bytes, *, max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS, name: str | None = None
) -> bytes:
    """The image checked by decoding it within ``max_pixels`` (``probe.decode_image``).

    One that fits comes back as the same bytes. A baseline JPEG over the budget comes back
    as the reduced image libjpeg decoded it to (1/2 to 1/8 scale, within the budget),
    re-encoded as JPEG with its EXIF, ICC profile and comment; any other image over the
    budget is refused (``MediaReadError`` naming it, its pixels and the budget)."""
    name = name or "<image>"
    img, (width, height) = probe.decode_image(data, name, max_pixels)
    try:
        if width * height <= max_pixels:
            return data
        keep = {k: img.info[k] for k in ("exif", "icc_profile", "comment") if img.info.get(k)}
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=90, **keep)
        return buf.getvalue()
    finally:
        img.close()


def shrink_image(
    data: bytes,
    *,
    max_bytes: int,
    name: str | None = None,
    max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
) -> bytes:
    """Re-encode and downscale an image until it is at most ``max_bytes``.

    Keeps PNG, JPEG and WebP in their format and keeps the text it carries (PNG text
    chunks, EXIF), since that text can matter to whoever reads the image. JPEG and WebP
    first step down in quality. It is decoded within ``max_pixels`` (see ``fit_image``).
    """
    if len(data) <= max_bytes:
        return data
    name = name or "<image>"
    from PIL import Image, PngImagePlugin

    img: Image.Image
    img, _ = probe.decode_image(data, name, max_pixels)
    fmt = img.format if img.format in _PIL_FORMATS else "PNG"
    exif = img.info.get("exif")
    icc = img.info.get("icc_profile")
    pnginfo = PngImagePlugin.PngInfo()
    for key, value in getattr(img, "text", {}).items():
        pnginfo.add_text(key, value)
    if img.mode in ("P", "1", "LA", "PA") or (fmt == "JPEG" and img.mode not in ("RGB", "L")):
        has_alpha = "A" in img.getbands() or "transparency" in img.info
        img = img.convert("RGBA" if has_alpha and fmt != "JPEG" else "RGB")

    def encode(im: Any, quality: int) -> bytes:
        buf = io.BytesIO()
        kwargs: dict[str, Any] = {}
        if icc:
            kwargs["icc_profile"] = icc
        if fmt == "PNG":
            im.save(buf, format="PNG", optimize=True, pnginfo=pnginfo, **kwargs)
        else:
            if exif:
                kwargs["exif"] = exif
            im.save(buf, format=fmt, quality=quality, **kwargs)
        return buf.getvalue()

    qualities = [85, 75, 65, 50] if fmt != "PNG" else [0]
    out = data
    for q in qualities:
        out = encode(img, q)
        if len(out) <= max_bytes:
            return out
    quality = qualities[-1]
    current: Image.Image = img
    while True:
        ratio = max(0.3, min(0.9, math.sqrt(max_bytes / len(out)) * 0.95))
        w, h = max(1, int(current.width * ratio)), max(1, int(current.height * ratio))
        if min(w, h) < 16:
            raise LimitExceededError(
                f"image cannot be shrunk below {len(out)} bytes",
                source=name,
                limit=f"{max_bytes} bytes",
            )
        current = img.resize((w, h), Image.Resampling.LANCZOS)
        out = encode(current, quality)
        if len(out) <= max_bytes:
            return out


# =========================================================================== audio / video

_AV_FAMILY = {
    "video/mp4": "mp4",
    "video/quicktime": "mov",
    "audio/mpeg": "mp3",
    "audio/wav": "wav",
}
_AUDIO_ENCODER = {"mp4": "aac", "mov": "aac", "mp3": "libmp3lame", "wav": "pcm_s16le"}
# container tags the muxer writes itself; everything else is copied to each piece
_MUXER_TAGS = frozenset({"major_brand", "minor_version", "compatible_brands", "encoder"})
# a piece keeps this much below the limit, so rounding in the container never reaches it
_MARGIN_SECONDS = 0.25
# a secondary stream further than this behind the primary is treated as ended
_INTERLEAVE_SLACK = 10.0


def _piece_length(max_seconds: float) -> float:
    return max_seconds - min(_MARGIN_SECONDS, max_seconds * 0.01)


@dataclass
class _Piece:
    index: int
    start: float  # absolute seconds, primary stream's clock
    end: float
    copy: bool
    start_pts: int | None = None  # primary pts of the keyframe it starts on
    end_pts: int | None = None  # primary pts of the keyframe it stops before (None: stream end)
    first: bool = False
    last: bool = False


@dataclass
class _Scan:
    """What one demux-only pass over the file learned: no decoding, O(keyframes) memory."""

    family: str
    mime: str
    modality: str
    primary: int
    audio: int | None  # a video's first audio track
    origin: float  # first primary timestamp, seconds
    ends: dict[int, float]  # end of each scanned stream, seconds
    cuts: list[float] = field(default_factory=list)
    cut_pts: dict[float, int] = field(default_factory=dict)
    metadata: dict[str, str] = field(default_factory=dict)
    sample_rate: int = 0
    pcm: bool = False
    keep: list[int] = field(default_factory=list)  # set by ``_keep``
    end: float = 0.0
    dropped_streams: bool = False
    declared: float = 0.0  # the container's own duration, seconds (0: unknown)
    # header bytes to overwrite when reading (offset -> bytes): a WAV whose data chunk
    # declares less than the file holds is read with its sizes repaired (FFmpeg would
    # stop where the header says, and so would the service)
    patch: dict[int, bytes] = field(default_factory=dict)

    @property
    def duration(self) -> float:
        return self.end - self.origin

    @property
    def full_duration(self) -> float:
        return max(self.ends.values()) - self.origin


def _keep(scan: _Scan, use_audio: bool) -> _Scan:
    """The scan narrowed to the streams the pieces will carry."""
    keep = [scan.primary]
    if scan.audio is not None and use_audio:
        keep.append(scan.audio)
    return replace(
        scan,
        keep=keep,
        end=max(scan.ends[i] for i in keep),
        dropped_streams=scan.audio is not None and not use_audio,
    )


def _head(path: Path, name: str, size: int = 8192) -> bytes:
    try:
        with path.open("rb") as f:
            return f.read(size)
    except OSError as exc:
        raise MediaReadError(f"cannot read file: {exc.strerror or exc}", source=name) from exc


class _Patched(io.RawIOBase):
    """A file read with a few header bytes replaced, without copying the file."""

    def __init__(self, path: Path, patch: dict[int, bytes]) -> None:
        super().__init__()
        self._f = path.open("rb")
        self._patch = patch

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._f.seek(offset, whence)

    def tell(self) -> int:
        return self._f.tell()

    def readinto(self, buffer: Any) -> int:
        pos = self._f.tell()
        n = self._f.readinto(buffer)
        for at, data in self._patch.items():
            lo, hi = max(at, pos), min(at + len(data), pos + n)
            if lo < hi:
                buffer[lo - pos : hi - pos] = data[lo - at : hi - at]
        return n

    def close(self) -> None:
        self._f.close()
        super().close()


@contextlib.contextmanager
def _open_av(path: Path, patch: dict[int, bytes], **options: str) -> Iterator[Any]:
    """``av.open`` for reading, through ``_Patched`` when the header needs repairs."""
    import av

    if not patch:
        with av.open(str(path), mode="r", options=options) as container:
            yield container
        return
    with _Patched(path, patch) as f, av.open(f, mode="r", options=options) as container:
        yield container


def _read_whole(path: Path, name: str, patch: dict[int, bytes]) -> bytes:
    """The file's bytes as a piece sends them: with a lying WAV header repaired."""
    data = probe.read_file(path, name)
    if not patch:
        return data
    out = bytearray(data)
    for at, new in patch.items():
        out[at : at + len(new)] = new
    return bytes(out)


def _av_mime(path: Path, name: str) -> str:
    head = _head(path, name)
    if not head:
        raise MediaReadError("file is empty", source=name)
    mime = probe.sniff_mime(head)
    if mime not in _AV_FAMILY:
        raise UnsupportedMediaError(
            f"not an audio or video file this model accepts (detected {mime or 'unknown'})",
            source=name,
            limit="supported audio/video: " + ", ".join(sorted(_AV_FAMILY)),
        )
    return mime


def _scan(path: Path, name: str, mime: str) -> _Scan:
    """Read every packet header once (no decoding): stream ends, keyframe times, and
    whether the file holds what its header declares (truncation)."""
    import av

    family = _AV_FAMILY[mime]
    modality = "video" if mime.startswith("video/") else "audio"
    patch: dict[int, bytes] = {}
    if family == "wav":
        layout = probe.wav_layout(path, name)  # refuses a truncated WAV
        if layout is not None and layout.lies:
            patch = layout.repair()
    try:
        # headers state the streams; every packet is read below (see probe.av_info)
        with _open_av(path, patch, probesize="4096") as container:
            want = "video" if modality == "video" else "audio"
            primary = next(
                (
                    s
                    for s in container.streams
                    if s.type == want and not (s.disposition & av.stream.Disposition.attached_pic)
                ),
                None,
            )
            if primary is None:
                raise MediaReadError(f"no {want} stream found", source=name)
            audio = None
            if modality == "video":
                audio = next((s for s in container.streams if s.type == "audio"), None)
            scanned = [primary] if audio is None else [primary, audio]
            codec_name = primary.codec_context.name if primary.codec_context else ""
            scan = _Scan(
                family=family,
                mime=mime,
                modality=modality,
                primary=primary.index,
                audio=None if audio is None else audio.index,
                origin=math.inf,
                ends={s.index: -math.inf for s in scanned},
                metadata={k: v for k, v in container.metadata.items() if k not in _MUXER_TAGS},
                sample_rate=getattr(primary, "sample_rate", 0) or 0,
                pcm=family == "wav" and codec_name.startswith("pcm_"),
                patch=patch,
            )
            scan.declared = (container.duration or 0) / av.time_base
            declared = {
                s.index: float(((s.start_time or 0) + s.duration) * s.time_base)
                for s in scanned
                if s.duration and s.time_base
            }
            for packet in container.demux(*scanned):
                ts = packet.pts if packet.pts is not None else packet.dts
                if ts is None or packet.time_base is None:
                    continue
                t = float(ts * packet.time_base)
                sidx = packet.stream_index
                end = t + float((packet.duration or 0) * packet.time_base)
                scan.ends[sidx] = max(scan.ends[sidx], end)
                if sidx == scan.primary:
                    scan.origin = min(scan.origin, t)
                    if packet.is_keyframe and packet.pts is not None and t not in scan.cut_pts:
                        scan.cuts.append(t)
                        scan.cut_pts[t] = packet.pts
    except MediaReadError:
        raise
    except (av.FFmpegError, OSError, ValueError, EOFError) as exc:
        raise MediaReadError(f"cannot read media: {exc}", source=name) from exc
    if scan.origin == math.inf or scan.ends[scan.primary] <= scan.origin:
        raise MediaReadError("media has no measurable duration (truncated?)", source=name)
    for index, declared_end in declared.items():
        if family != "mp3" and declared_end > scan.ends[index] + 1.0:
            raise MediaReadError(
                f"media is truncated: its header declares {declared_end:.1f} s "
                f"but the file holds {scan.ends[index]:.1f} s",
                source=name,
            )
    scan.cuts.sort()
    return scan


def _plan(
    cuts: list[float], origin: float, end: float, length: float, overlap: float
) -> list[_Piece]:
    """Pieces of at most ``length`` s covering origin..end, each overlapping the one
    before by at least ``overlap`` s. A piece is a stream copy when it starts on a
    cut point (keyframe) and the next cut point allows at least half a step of
    progress; otherwise it is marked for re-encoding."""
    pieces: list[_Piece] = []
    cutset = set(cuts)
    step = length - overlap
    start = origin
    while True:
        on_cut = start in cutset
        if end - start <= length:
            pieces.append(_Piece(len(pieces), start, end, on_cut, last=True))
            break
        if on_cut:
            stop = cuts[bisect.bisect_right(cuts, start + length) - 1]
            nxt = cuts[bisect.bisect_right(cuts, stop - overlap) - 1]
            if stop > start and nxt >= start + step / 2:
                pieces.append(_Piece(len(pieces), start, stop, True))
                start = nxt
                continue
        stop = start + length
        pieces.append(_Piece(len(pieces), start, stop, False))
        j = bisect.bisect_right(cuts, stop - overlap) - 1
        start = cuts[j] if j >= 0 and cuts[j] >= start + step / 2 else stop - overlap
    pieces[0].first = True
    return pieces


class _Writer:
    """One output piece being muxed into memory (only the pieces in progress are held)."""

    def __init__(self, family: str, streams: list[Any], metadata: dict[str, str]) -> None:
        import av

        self.buf = io.BytesIO()
        self.out = av.open(self.buf, mode="w", format=family)
        self.out.metadata.update(metadata)
        self.map = {s.index: self.out.add_stream_from_template(s) for s in streams}

    def mux(self, packet: Any, stream_index: int, shift: int, bare: bool = False) -> None:
        """Mux ``packet`` moved back by ``shift`` ticks, then restore it: PyAV rescales
        a packet in place and the same packet may belong to the next piece too.
        ``bare`` muxes a copy without side data (see ``_split_copy``)."""
        if bare:
            import av

            copy = av.Packet(bytes(packet))
            copy.pts, copy.dts, copy.time_base = packet.pts, packet.dts, packet.time_base
            copy.duration, copy.is_keyframe = packet.duration, packet.is_keyframe
            packet = copy
        pts, dts, tb, dur = packet.pts, packet.dts, packet.time_base, packet.duration
        if pts is not None:
            packet.pts = pts - shift
        if dts is not None:
            packet.dts = dts - shift
        packet.stream = self.map[stream_index]
        self.out.mux(packet)
        packet.pts, packet.dts, packet.time_base, packet.duration = pts, dts, tb, dur

    def close(self) -> bytes:
        self.out.close()
        return self.buf.getvalue()

    def abort(self) -> None:
        with contextlib.suppress(Exception):  # already failing: the first error matters
            self.out.close()


def _check_overlap(max_seconds: float, overlap_seconds: float) -> None:
    if max_seconds <= 0:
        raise ValueError("max_seconds must be positive")
    length = _piece_length(max_seconds)
    if not 0 <= overlap_seconds < length / 2:
        raise ValueError(
            f"overlap_seconds must be in 0..{length / 2:g} for max_seconds={max_seconds:g}"
        )


def split_media(
    path: str | Path,
    *,
    max_seconds: float,
    overlap_seconds: float = 2.0,
    use_audio: bool = True,
    name: str | None = None,
) -> Iterator[Segment]:
    """Overlapping pieces of an audio (WAV, MP3) or video (MP4, MOV) file, each
    strictly shorter than ``max_seconds`` and together covering the whole file.

    It streams: one demux-only pass finds the keyframes, a second remuxes packets
    into the pieces (stream copy, no re-encoding), holding only the encoded bytes
    of the pieces in progress. Video is cut on keyframes, so an overlap is at least
    ``overlap_seconds`` (rounded out to the keyframe grid); a piece whose keyframes
    are too far apart is re-encoded instead. PCM WAV is cut at exact samples.
    ``use_audio=False`` drops a video's audio track. A file already under the
    limit, with nothing to drop, is one piece of its original bytes.
    The file is checked when this is called; pieces are made as they are consumed.
    """
    path = Path(path)
    name = name or str(path)
    _check_overlap(max_seconds, overlap_seconds)
    mime = _av_mime(path, name)
    return _split_scanned(
        path, name, _keep(_scan(path, name, mime), use_audio), max_seconds, overlap_seconds
    )


def _split_scanned(
    path: Path, name: str, scan: _Scan, max_seconds: float, overlap_seconds: float
) -> Iterator[Segment]:
    length = _piece_length(max_seconds)
    if scan.duration < max_seconds and not scan.dropped_streams:
        whole = Segment(
            _read_whole(path, name, scan.patch),
            None,
            scan.mime,
            scan.modality,
            name,
            0,
            1,
            start_seconds=0.0,
            end_seconds=round(scan.duration, 6),
        )
        return iter([whole])
    if scan.pcm:
        return _split_pcm(path, name, scan, length, overlap_seconds)
    pieces = _plan(scan.cuts, scan.origin, scan.end, length, overlap_seconds)
    for piece in pieces:
        piece.start_pts = scan.cut_pts.get(piece.start)
        piece.end_pts = None if piece.last else scan.cut_pts.get(piece.end)
    return _split_copy(path, name, scan, pieces, max_seconds)


def _segment(scan: _Scan, name: str, piece: _Piece, count: int, data: bytes) -> Segment:
    end = piece.end - scan.origin
    if piece.last:  # e.g. MP3: the last frame's padding is not audio
        end = probe.real_seconds(end, scan.declared)
    return Segment(
        data,
        None,
        scan.mime,
        scan.modality,
        name,
        piece.index,
        count,
        start_seconds=round(piece.start - scan.origin, 6),
        end_seconds=round(end, 6),
    )


def _split_copy(
    path: Path, name: str, scan: _Scan, pieces: list[_Piece], max_seconds: float
) -> Iterator[Segment]:
    """Single pass over the packets; a packet in an overlap goes to two pieces."""
    import av

    count = len(pieces)
    done: dict[int, bytes] = {}
    next_out = 0

    def ready() -> Iterator[Segment]:
        # in order; re-encode pieces that could not be copied or came out too long
        nonlocal next_out
        while next_out < count:
            piece = pieces[next_out]
            if next_out in done:
                data = done.pop(next_out)
                if probe.av_info(data, name).duration >= max_seconds:
                    data = _encode_piece(path, name, scan, piece)
            elif not piece.copy:
                data = _encode_piece(path, name, scan, piece)
            else:
                return
            yield _segment(scan, name, piece, count, data)
            next_out += 1

    start_at = {p.start_pts: p.index for p in pieces if p.copy and p.start_pts is not None}
    stop_at = {p.end_pts: p.index for p in pieces if p.copy and p.end_pts is not None}
    writers: dict[int, _Writer] = {}
    active: set[int] = set()  # pieces the primary stream is currently feeding
    stopped: set[int] = set()
    latest = dict.fromkeys(scan.keep, -math.inf)
    closed = 0  # pieces below this index are finished
    try:
        with _open_av(path, scan.patch) as container:
            kept = [container.streams[i] for i in scan.keep]
            for packet in container.demux(*kept):
                ts = packet.pts if packet.pts is not None else packet.dts
                if ts is None or packet.time_base is None:
                    continue
                sidx, tb = packet.stream_index, packet.time_base
                t = float(ts * tb)
                latest[sidx] = max(latest[sidx], t)
                targets: list[int] = []
                if sidx == scan.primary:
                    # decode order from the start keyframe up to the stop keyframe
                    if packet.is_keyframe and packet.pts is not None:
                        if packet.pts in stop_at:
                            active.discard(stop_at[packet.pts])
                            stopped.add(stop_at[packet.pts])
                        if packet.pts in start_at:
                            active.add(start_at[packet.pts])
                    targets = sorted(active)
                else:
                    end_t = t + float((packet.duration or 0) * tb)
                    for piece in pieces[closed:]:
                        if piece.start > t and not piece.first:
                            break
                        if (
                            piece.copy
                            and (piece.first or t >= piece.start)
                            and (piece.last or end_t <= piece.end)
                        ):
                            targets.append(piece.index)
                for index in targets:
                    writer = writers.get(index)
                    if writer is None:
                        writer = writers[index] = _Writer(scan.family, kept, scan.metadata)
                    # An MP3 packet's skip-samples side data (encoder delay on the first,
                    # padding on the last) sets the LAME tag the muxer writes; only the
                    # first piece starts where that delay applies, and FFmpeg misreads a
                    # trailing one alone (it skips ~0.5 s at the piece's start).
                    bare = scan.family == "mp3" and not pieces[index].first
                    writer.mux(packet, sidx, round(pieces[index].start / tb), bare)
                # finish the pieces every kept stream has moved past
                primary_t = latest[scan.primary]
                while closed < count and not pieces[closed].last:
                    piece = pieces[closed]
                    if piece.copy:
                        caught_up = min(latest.values()) >= piece.end
                        slack = primary_t >= piece.end + _INTERLEAVE_SLACK
                        if piece.index not in stopped or not (caught_up or slack):
                            break
                        writer = writers.pop(piece.index, None)
                        if writer is None:  # nothing landed in it: re-encode it
                            piece.copy = False
                        else:
                            done[piece.index] = writer.close()
                    elif primary_t < piece.end:
                        break
                    closed += 1
                yield from ready()
            for index in sorted(writers):
                done[index] = writers.pop(index).close()
    except av.FFmpegError as exc:
        raise MediaReadError(f"cannot read media: {exc}", source=name) from exc
    finally:
        for writer in writers.values():
            writer.abort()
    for piece in pieces[next_out:]:
        if piece.index not in done:
            piece.copy = False
    yield from ready()


def _split_pcm(
    path: Path, name: str, scan: _Scan, length: float, overlap: float
) -> Iterator[Segment]:
    """PCM WAV cut at exact samples: packet bytes are sliced on sample-frame
    boundaries and muxed unchanged, so every piece holds the original samples."""
    import av

    rate = scan.sample_rate
    tick = Fraction(1, rate)
    total = round(scan.duration * rate)
    span = int(length * rate)
    step = span - round(overlap * rate)
    windows: list[tuple[int, int]] = []
    start = 0
    while True:
        windows.append((start, min(start + span, total)))
        if start + span >= total:
            break
        start += step
    count = len(windows)
    origin = round(scan.origin * rate)
    writers: dict[int, _Writer] = {}
    next_out = 0

    def segment(index: int, data: bytes) -> Segment:
        w_start, w_stop = windows[index]
        return Segment(
            data,
            None,
            scan.mime,
            scan.modality,
            name,
            index,
            count,
            start_seconds=round(w_start / rate, 6),
            end_seconds=round(w_stop / rate, 6),
        )

    try:
        with _open_av(path, scan.patch) as container:
            stream = container.streams[scan.primary]
            for packet in container.demux(stream):
                if packet.pts is None or not packet.size or packet.time_base is None:
                    continue
                first = round(packet.pts * packet.time_base * rate) - origin
                nsamples = round((packet.duration or 0) * packet.time_base * rate)
                payload = bytes(packet)
                if nsamples <= 0 or len(payload) % nsamples:
                    raise MediaReadError(
                        "PCM packet does not hold whole sample frames", source=name
                    )
                align = len(payload) // nsamples
                last = first + nsamples
                for index in range(next_out, count):
                    w_start, w_stop = windows[index]
                    if w_start >= last:
                        break
                    lo, hi = max(first, w_start), min(last, w_stop)
                    if lo >= hi:
                        continue
                    writer = writers.get(index)
                    if writer is None:
                        writer = writers[index] = _Writer("wav", [stream], scan.metadata)
                    piece = av.Packet(payload[(lo - first) * align : (hi - first) * align])
                    piece.pts = piece.dts = lo - w_start
                    piece.duration = hi - lo
                    piece.time_base = tick
                    piece.stream = writer.map[stream.index]
                    writer.out.mux(piece)
                while next_out < count and windows[next_out][1] <= last:
                    writer = writers.pop(next_out)
                    yield segment(next_out, writer.close())
                    next_out += 1
    except av.FFmpegError as exc:
        raise MediaReadError(f"cannot read media: {exc}", source=name) from exc
    finally:
        for writer in writers.values():
            writer.abort()
    if next_out < count:
        raise MediaReadError("WAV ended before its declared length (truncated?)", source=name)


def _encode_piece(path: Path, name: str, scan: _Scan, piece: _Piece) -> bytes:
    """Fallback when stream copy cannot make a piece (keyframes too far apart):
    decode from the keyframe before the piece and re-encode only its video (or,
    for audio files, its audio) in the piece's time range. A video's audio track
    is still stream-copied: every audio packet is a cut point."""
    import av

    from gemb2.testing.samples import video_encoder

    start, stop = piece.start, piece.end
    try:
        with _open_av(path, scan.patch) as src:
            kept: list[Any] = [src.streams[i] for i in scan.keep]
            buf = io.BytesIO()
            with av.open(buf, mode="w", format=scan.family) as out:
                out.metadata.update(scan.metadata)
                encoders: dict[int, Any] = {}
                copied: dict[int, Any] = {}
                for s in kept:
                    ctx: Any = s.codec_context
                    enc: Any
                    if s.type == "video":
                        codec = video_encoder()
                        options = {"preset": "veryfast"} if "264" in codec else {}
                        rate = s.average_rate or s.guessed_rate or 25
                        enc = out.add_stream(codec, rate=rate, options=options)
                        enc.width, enc.height = ctx.width, ctx.height
                        enc.pix_fmt = "yuv420p"
                        enc.codec_context.time_base = s.time_base
                        encoders[s.index] = enc
                    elif scan.modality == "video":
                        copied[s.index] = out.add_stream_from_template(s)
                    else:
                        encoders[s.index] = out.add_stream(
                            _AUDIO_ENCODER[scan.family],
                            rate=ctx.sample_rate,
                            layout=ctx.layout.name,
                        )
                primary = kept[0]
                src.seek(int(start / primary.time_base), stream=primary, backward=True)
                past_end: set[int] = set()
                for packet in src.demux(*kept):
                    stream = packet.stream
                    tb = packet.time_base
                    if packet.pts is None or tb is None:
                        continue
                    if stream.index in copied:
                        t = float(packet.pts * tb)
                        end_t = t + float((packet.duration or 0) * tb)
                        if t >= stop and not piece.last:
                            past_end.add(stream.index)
                        elif (piece.first or t >= start) and (piece.last or end_t <= stop):
                            shift = round(start / tb)
                            packet.pts -= shift
                            if packet.dts is not None:
                                packet.dts -= shift
                            packet.stream = copied[stream.index]
                            out.mux(packet)
                    else:
                        for frame in packet.decode():
                            f: Any = frame
                            if f.time is None:
                                continue
                            t = float(f.time)
                            if t >= stop and not piece.last:
                                past_end.add(stream.index)
                            elif t >= start:
                                if stream.type == "video":
                                    f = f.reformat(format="yuv420p")
                                    f.pts = round((t - start) / tb)
                                    f.time_base = tb
                                else:
                                    f.pts = round((t - start) * f.sample_rate)
                                    f.time_base = Fraction(1, f.sample_rate)
                                for out_packet in encoders[stream.index].encode(f):
                                    out.mux(out_packet)
                    if len(past_end) == len(kept):
                        break
                for enc in encoders.values():
                    for out_packet in enc.encode(None):
                        out.mux(out_packet)
            return buf.getvalue()
    except av.FFmpegError as exc:
        raise MediaReadError(f"cannot re-encode a piece of the media: {exc}", source=name) from exc


# =========================================================================== files


def segment_file(
    path: str | Path,
    limits: Limits,
    *,
    overlap_seconds: float = 2.0,
    use_video_audio: bool = False,
) -> list[Segment] | Iterator[Segment]:
    """Pieces of one file that each fit ``limits``; the type is sniffed from content.

    Plain UTF-8 text is recognised by its extension (``.txt``, ``.md``, ...). Audio
    and video over their limit come back as a lazy iterator (see ``split_media``);
    everything else as a list. A file that fits is one piece holding all of it.
    """
    path = Path(path)
    name = str(path)
    head = _head(path, name)
    if not head:
        raise MediaReadError("file is empty", source=name)
    mime = probe.sniff_mime(head)
    if mime is None and path.suffix.lower() in probe.TEXT_SUFFIXES:
        data = probe.read_file(path, name)
        if probe.looks_like_text(data):
            return _segment_text(data, name, limits)
        raise UnsupportedMediaError(
            "named like a text file but is not UTF-8 text (re-save it as UTF-8)",
            source=name,
            limit=f"supported: {_supported_list()}",
        )
    modality = probe.modality_of(mime) if mime else None
    if mime is None or modality is None:
        detected = mime or ("text/plain" if probe.looks_like_text(head) else "unknown binary data")
        hint = ""
        if detected == "text/plain":
            hint = f" (text is read from files named {', '.join(sorted(probe.TEXT_SUFFIXES))})"
        raise UnsupportedMediaError(
            f"unsupported file type: content is {detected}{hint}",
            source=name,
            limit=f"supported: {_supported_list()}",
        )
    if modality == "pdf":
        data = probe.read_file(path, name)
        return split_pdf(data, max_pages=limits.max_pdf_pages, name=name)
    if modality == "image":
        data = probe.read_file(path, name)
        budget = limits.max_image_pixels
        if mime in ("image/png", "image/jpeg", "image/webp"):
            data = fit_image(data, max_pixels=budget, name=name)
        if len(data) > limits.max_inline_bytes:
            data = shrink_image(
                data, max_bytes=limits.max_inline_bytes, name=name, max_pixels=budget
            )
        return [Segment(data, None, mime, "image", name, 0, 1)]
    if mime not in _AV_FAMILY:  # e.g. an AV type probe knows but we cannot cut
        data = probe.read_file(path, name)
        return [Segment(data, None, mime, modality, name, 0, 1)]
    scan = _scan(path, name, mime)
    if modality == "audio":
        max_s = limits.max_audio_seconds
        use_audio = True
    else:
        max_s = limits.max_video_seconds
        use_audio = use_video_audio
        if use_video_audio and scan.audio is not None:
            max_s = min(max_s, limits.max_video_with_audio_seconds)
    # measured from the packets (a header can lie), the header's if they agree
    duration = probe.real_seconds(scan.full_duration, scan.declared)
    if duration > max_s:
        _check_overlap(max_s, overlap_seconds)
        return _split_scanned(path, name, _keep(scan, use_audio), max_s, overlap_seconds)
    return [
        Segment(
            _read_whole(path, name, scan.patch),
            None,
            mime,
            modality,
            name,
            0,
            1,
            start_seconds=0.0,
            end_seconds=round(duration, 6),
        )
    ]


def _segment_text(data: bytes, name: str, limits: Limits) -> list[Segment]:
    from gemb2.model.tasks import PREFIX_TOKENS

    text = data.decode("utf-8-sig")
    if not text.strip():
        raise InputError("text file is empty", source=name)
    budget = max(1, limits.max_tokens - PREFIX_TOKENS)  # room for the task prefix
    if estimate_tokens(text) <= budget:
        return [
            Segment(None, text, "text/plain", "text", name, 0, 1, char_start=0, char_end=len(text))
        ]
    return split_text(text, max_tokens=budget, name=name)

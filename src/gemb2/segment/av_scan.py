"""Reading an audio or video container before it is cut: one demux-only pass.

Splitting needs to know, without decoding, where the keyframes are, where each
stream really ends (a header can lie or a file be truncated) and which header bytes
to repair (a WAV declaring less than it holds). That reading lives here, apart from
the planning and muxing of pieces in ``av_split``, so each can be read on its own.
"""

from __future__ import annotations

import contextlib
import io
import math
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from gemb2.errors import MediaReadError, UnsupportedMediaError
from gemb2.inputs import probe

_AV_FAMILY = {
    "video/mp4": "mp4",
    "video/quicktime": "mov",
    "audio/mpeg": "mp3",
    "audio/wav": "wav",
}


# container tags the muxer writes itself; everything else is copied to each piece
_MUXER_TAGS = frozenset({"major_brand", "minor_version", "compatible_brands", "encoder"})


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

"""Cutting audio and video into overlapping pieces under the duration limit.

Given what ``av_scan`` learned of the file, this plans the pieces on the keyframe
grid, remuxes packets into them in one streaming pass (stream copy, no re-encoding),
cuts PCM WAV at exact samples, and re-encodes only a piece that stream copy cannot
make. Only the encoded bytes of the pieces in progress are held in memory.
"""

from __future__ import annotations

import bisect
import contextlib
import io
import math
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from gemb2.errors import MediaReadError
from gemb2.inputs import probe
from gemb2.segment.av_scan import _av_mime, _keep, _open_av, _read_whole, _Scan, _scan
from gemb2.segment.record import Segment

__all__ = ["split_media"]


_AUDIO_ENCODER = {"mp4": "aac", "mov": "aac", "mp3": "libmp3lame", "wav": "pcm_s16le"}


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

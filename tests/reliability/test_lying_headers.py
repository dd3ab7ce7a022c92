"""Headers that lie (issue 16, item 4): limits and splitting go by what a file really holds.

A WAV whose header claims 1 s over 200 s of samples (a recorder that never rewrote its
header) was sent as one "1-second" piece of 3.2 MB; FFmpeg, and so probably the service,
reads only what the header declares. The same for an MP4 or MP3 whose container duration
lies. Every file here is real: written by ``gemb2.testing.samples`` and then patched.
"""

from __future__ import annotations

import base64
import io
import itertools
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from rel_helpers import DIMS, dump, persistent, run_cli

from gemb2 import Embedder
from gemb2.errors import LimitExceededError, MediaReadError
from gemb2.ingest.loading import load_file
from gemb2.inputs.probe import av_info
from gemb2.model.catalog import Limits
from gemb2.testing import samples
from gemb2.testing.emulator import Emulator

AUDIO_LIMIT = Limits().max_audio_seconds  # 80 s
RATE = 8000  # 200 s of 16-bit mono: 3.2 MB, the file


def _spans(items: list[Any]) -> list[tuple[float, float]]:
    return [(it.metadata["start_seconds"], it.metadata["end_seconds"]) for it in items]


def _check_cover(spans: list[tuple[float, float]], total: float, limit: float) -> None:
    """Pieces under ``limit`` that start at 0, end at ``total`` and leave no gap."""
    assert spans[0][0] == 0
    assert spans[-1][1] == pytest.approx(total, abs=0.1)
    assert all(0 < end - start < limit for start, end in spans), spans
    assert all(nxt[0] < prev[1] for prev, nxt in itertools.pairwise(spans)), spans


def _header_seconds(source: Path | bytes) -> float:
    """The duration the container's header states, as FFmpeg reads it."""
    src: Any = io.BytesIO(source) if isinstance(source, bytes) else str(source)
    with av.open(src) as container:
        return float(container.duration or 0) / av.time_base


def _data_chunk(data: bytes) -> tuple[int, int]:
    """(offset, declared size) of a WAV's data chunk."""
    pos = 12
    while data[pos : pos + 4] != b"data":
        pos += 8 + struct.unpack("<I", data[pos + 4 : pos + 8])[0]
        pos += pos & 1
    return pos + 8, struct.unpack("<I", data[pos + 4 : pos + 8])[0]


def _pcm(data: bytes) -> np.ndarray:
    """The 16-bit samples of a WAV whose header states them (and the file ends with them)."""
    start, size = _data_chunk(data)
    assert start + size == len(data), "the header does not state the data"
    return np.frombuffer(data[start:], dtype="<i2")


def _sent_audio(emulator: Emulator) -> list[bytes]:
    """Every inline audio part the emulator received, decoded."""
    out = []
    for body in emulator.stats.last_bodies:
        for req in body.get("requests", []):
            for part in req["content"]["parts"]:
                blob = part.get("inlineData") or part.get("inline_data")
                if blob and blob.get("mimeType", blob.get("mime_type", "")).startswith("audio"):
                    text = blob["data"].replace("-", "+").replace("_", "/")
                    out.append(base64.b64decode(text + "=" * (-len(text) % 4)))
    return out


@pytest.fixture
def embedder(emulator: Emulator) -> Iterator[Embedder]:
    # one piece a call, so the emulator keeps every body whole
    with Embedder(base_url=emulator.base_url, dimensions=DIMS, max_call_bytes=1_500_000) as e:
        yield e


@pytest.fixture(scope="module")
def recorder_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """200 s of samples under a header whose RIFF and data sizes claim 1 s."""
    folder = tmp_path_factory.mktemp("lying") / "recordings"
    folder.mkdir()
    path = samples.make_wav(
        folder / "recorder.wav",
        200,
        sample_rate=RATE,
        header_seconds=1,
        description="a long field recording",
    )
    assert _header_seconds(path) == 1.0  # the lie is real: FFmpeg believes it
    return path


def test_a_wav_whose_header_claims_1_s_is_split_by_its_200_s_of_samples(
    recorder_wav: Path, embedder: Embedder, emulator: Emulator
) -> None:
    assert av_info(recorder_wav).duration == 200.0
    items = load_file(recorder_wav)
    assert len(items) == 3
    _check_cover(_spans(items), 200.0, AUDIO_LIMIT)
    data = recorder_wav.read_bytes()
    original = np.frombuffer(data[_data_chunk(data)[0] :], dtype="<i2")
    assert len(original) == 200 * RATE
    for item, (start, end) in zip(items, _spans(items), strict=True):
        piece = item.media[0].data
        assert piece is not None
        assert _header_seconds(piece) == pytest.approx(end - start)  # an honest header
        kept = _pcm(piece)  # the original's own samples of that time range
        assert np.array_equal(kept, original[round(start * RATE) : round(end * RATE)])

    vectors = embedder.embed(items)
    # pieces of equal length of a steady recording can be byte-identical: each distinct
    # piece is sent once (and every piece gets its vector)
    distinct = {item.media[0].data for item in items}
    assert len(vectors) == 3 and emulator.stats.items == len(distinct) >= 2
    sent = _sent_audio(emulator)
    assert len(sent) == len(distinct)
    assert sum(len(b) for b in distinct) == sum(len(b) for b in sent)
    assert all(av_info(b).duration < AUDIO_LIMIT for b in sent)


def test_a_lying_wav_as_one_item_is_refused_before_any_request(
    recorder_wav: Path, tmp_path: Path, embedder: Embedder, emulator: Emulator
) -> None:
    with pytest.raises(LimitExceededError) as over:
        embedder.embed(["a text first", recorder_wav])
    message = str(over.value)
    assert message.startswith(f"item 1 ({recorder_wav})"), message
    assert "audio is 200.0 s long (its WAV header claims 1.0 s)" in message
    assert "80 s per audio" in message

    short = samples.make_wav(tmp_path / "short.wav", 50, sample_rate=RATE, header_seconds=1)
    with pytest.raises(MediaReadError) as lies:
        embedder.embed([short])
    message = str(lies.value)
    assert message.startswith(f"item 0 ({short})"), message
    assert "WAV header claims 1.0 s but the file holds 50.0 s of samples" in message
    assert "gemb2.ingest.loading.load_file" in message  # the way out
    assert emulator.stats.requests == 0


def test_a_lying_wav_under_the_limit_is_sent_whole_with_its_header_repaired(
    tmp_path: Path,
) -> None:
    path = samples.make_wav(tmp_path / "short.wav", 50, sample_rate=RATE, header_seconds=1)
    original = path.read_bytes()
    for defer in (False, True):  # in memory, and the indexer's read-when-sent pieces
        (item,) = load_file(path, defer=defer)
        assert _spans([item]) == [(0.0, 50.0)]
        sent = item.media[0].read()
        assert sent is not None and len(sent) == len(original)
        assert _header_seconds(sent) == av_info(sent).duration == 50.0
        assert np.array_equal(_pcm(sent), np.frombuffer(original[-50 * RATE * 2 :], "<i2"))
    assert path.read_bytes() == original  # the user's file is never touched


def test_gemb2_index_stores_the_real_length_of_a_lying_wav(
    recorder_wav: Path, capsys: pytest.CaptureFixture[str], emulator: Emulator, tmp_path: Path
) -> None:
    db = tmp_path / "db"
    code, _, err = run_cli(
        capsys,
        "index",
        str(recorder_wav.parent),
        "--db",
        str(db),
        "--base-url",
        emulator.base_url,
        "--dimensions",
        str(DIMS),
        "-q",
    )
    assert code == 0, err
    records = dump(persistent(db).get_collection("gemb2"))
    spans = sorted((m["start_seconds"], m["end_seconds"]) for _, m in records.values())
    assert len(spans) == 3
    _check_cover(spans, 200.0, AUDIO_LIMIT)


def test_chunks_or_a_tag_after_the_data_are_not_taken_for_samples(tmp_path: Path) -> None:
    """No false alarm: what follows the data chunk in ordinary WAVs (LIST/id3 chunks, an
    appended ID3 tag) is not audio, and a header that states the data is not a lie."""
    plain = samples.make_wav(tmp_path / "plain.wav", 3, sample_rate=RATE).read_bytes()
    note = b"INFOICMT" + struct.pack("<I", 4000) + b"n" * 4000  # > 1 s of bytes
    chunk = b"LIST" + struct.pack("<I", len(note)) + note
    with_list = bytearray(plain + chunk)
    with_list[4:8] = struct.pack("<I", len(with_list) - 8)
    with_tag = plain + b"ID3\x04\x00\x00" + bytes(20_000)
    for data in (plain, bytes(with_list), with_tag):
        assert av_info(data).duration == _header_seconds(data) == 3.0


# -- MP4 and MP3 whose container duration lies -------------------------------------------


def _boxes(data: bytes, start: int, end: int) -> Iterator[tuple[bytes, int, int]]:
    """(type, body start, box end) of the ISO-BMFF boxes between ``start`` and ``end``."""
    pos = start
    while pos + 8 <= end:
        size, kind = struct.unpack(">I4s", data[pos : pos + 8])
        head = 8
        if size == 1:
            size, head = struct.unpack(">Q", data[pos + 8 : pos + 16])[0], 16
        elif size == 0:
            size = end - pos
        yield kind, pos + head, pos + size
        pos += size


def _claim_mp4_seconds(path: Path, seconds: float) -> None:
    """Rewrite the movie, track and media durations (mvhd, tkhd, mdhd) to ``seconds``."""
    data = bytearray(path.read_bytes())
    movie_scale = 1

    def walk(start: int, end: int) -> None:
        nonlocal movie_scale
        for kind, body, stop in _boxes(bytes(data), start, end):
            if kind in (b"moov", b"trak", b"mdia"):
                walk(body, stop)
            elif kind in (b"mvhd", b"mdhd"):
                assert data[body] == 0  # version 0: 32-bit fields
                scale = struct.unpack(">I", data[body + 12 : body + 16])[0]
                movie_scale = scale if kind == b"mvhd" else movie_scale
                data[body + 16 : body + 20] = struct.pack(">I", round(seconds * scale))
            elif kind == b"tkhd":
                assert data[body] == 0
                data[body + 20 : body + 24] = struct.pack(">I", round(seconds * movie_scale))

    walk(0, len(data))
    path.write_bytes(bytes(data))


def _claim_mp3_seconds(path: Path, seconds: float, rate: int = 22050) -> None:
    """Rewrite the frame count of the LAME/Xing info frame to ``seconds`` of frames."""
    data = bytearray(path.read_bytes())
    at = max(data.find(b"Xing", 0, 4096), data.find(b"Info", 0, 4096))
    assert at > 0 and struct.unpack(">I", data[at + 4 : at + 8])[0] & 1  # has a frame count
    data[at + 8 : at + 12] = struct.pack(">I", round(seconds * rate / 576))
    path.write_bytes(bytes(data))


@pytest.fixture(scope="module")
def lying_av(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("lying_av")
    mp4 = samples.make_mp4(d / "talk.mp4", 200, fps=2, size=(32, 24), with_audio=True)
    _claim_mp4_seconds(mp4, 1.0)
    mp3 = samples.make_mp3(d / "song.mp3", 200)
    _claim_mp3_seconds(mp3, 1.0)
    return {"video": mp4, "audio": mp3}


@pytest.mark.parametrize("modality", ["video", "audio"])
def test_a_container_duration_that_lies_is_measured_by_its_packets(
    modality: str, lying_av: dict[str, Path], embedder: Embedder, emulator: Emulator
) -> None:
    path = lying_av[modality]
    assert _header_seconds(path) == pytest.approx(1.0, abs=0.1)  # what the header claims

    limits = Limits()
    limit = limits.max_video_seconds if modality == "video" else limits.max_audio_seconds
    items = load_file(path, limits)
    assert len(items) == (2 if modality == "video" else 3)
    _check_cover(_spans(items), 200.0, limit)
    assert all(av_info(it.media[0].data or b"").duration < limit for it in items)

    with pytest.raises(LimitExceededError, match=rf"item 0 .*{modality} is 200\.\d s long"):
        embedder.embed([path])
    assert emulator.stats.requests == 0
    assert av_info(path).duration == pytest.approx(200.0, abs=0.1)  # what the packets hold

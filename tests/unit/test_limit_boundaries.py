"""The audio limit and the video-with-audio limit at their boundaries (issue 16, item 16).

Just under and exactly at a limit passes, just over fails: a direct Item over it is
refused by ``check_item`` before any request, and the loader (which every wrapper and the
CLI use) splits the file into pieces under it. The 80 s limit of a video whose audio
track is used applies only with ``use_video_audio=True`` and only to a video that has an
audio track; otherwise a video gets the 120 s limit. The limits are the model's
(``models.Limits``), the media real files from ``gemb2.testing.samples``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from gemb2 import Embedder, Item
from gemb2.errors import LimitExceededError
from gemb2.ingest.loading import load_file
from gemb2.inputs.probe import av_info
from gemb2.model.catalog import get_model
from gemb2.testing import samples
from gemb2.testing.emulator import Emulator

DIMS = 128
LIMITS = get_model("gemini-embedding-2").limits
AUDIO = LIMITS.max_audio_seconds
WITH_AUDIO = LIMITS.max_video_with_audio_seconds
VIDEO = LIMITS.max_video_seconds


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("boundaries")
    video = {"fps": 2, "size": (32, 24)}
    return {
        "audio under": samples.make_wav(d / "under.wav", AUDIO - 0.1, sample_rate=8000),
        "audio at": samples.make_wav(d / "at.wav", AUDIO, sample_rate=8000),
        "audio over": samples.make_wav(d / "over.wav", AUDIO + 0.1, sample_rate=8000),
        "talk under": samples.make_mp4(d / "talk_under.mp4", 79.5, with_audio=True, **video),
        "talk over": samples.make_mp4(d / "talk_over.mp4", 80.5, with_audio=True, **video),
        "silent over": samples.make_mp4(d / "silent_over.mp4", 80.5, **video),
    }


@pytest.fixture
def embedder(emulator: Emulator) -> Iterator[Embedder]:
    with Embedder(base_url=emulator.base_url, dimensions=DIMS) as e:
        yield e


@pytest.fixture
def with_audio(emulator: Emulator) -> Iterator[Embedder]:
    with Embedder(base_url=emulator.base_url, dimensions=DIMS, use_video_audio=True) as e:
        yield e


def _spans(items: list[Item]) -> list[tuple[float, float]]:
    return [(it.metadata["start_seconds"], it.metadata["end_seconds"]) for it in items]


def test_the_limits_are_the_documented_defaults() -> None:
    assert (AUDIO, WITH_AUDIO, VIDEO) == (80.0, 80.0, 120.0)


def test_audio_under_and_at_the_limit_is_one_item_and_just_over_is_refused(
    clips: dict[str, Path], embedder: Embedder, emulator: Emulator
) -> None:
    assert [av_info(clips[k]).duration for k in ("audio under", "audio at", "audio over")] == [
        pytest.approx(AUDIO - 0.1),
        AUDIO,
        pytest.approx(AUDIO + 0.1),
    ]
    vectors = embedder.embed([clips["audio under"], clips["audio at"]])
    assert len(vectors) == 2 and all(len(v) == DIMS for v in vectors)
    assert emulator.stats.items == 2

    emulator.reset_stats()
    over = clips["audio over"]
    with pytest.raises(LimitExceededError) as info:
        embedder.embed(["a text", over])
    message = str(info.value)
    assert message.startswith(f"item 1 ({over}): audio is 80.1 s long"), message
    assert "(limit: 80 s per audio; split it with gemb2.segment.split_media)" in message
    assert emulator.stats.requests == 0


def test_the_loader_splits_audio_just_over_the_limit_and_keeps_the_rest_whole(
    clips: dict[str, Path], embedder: Embedder, emulator: Emulator
) -> None:
    for key, seconds in (("audio under", AUDIO - 0.1), ("audio at", AUDIO)):
        (whole,) = load_file(clips[key])
        assert _spans([whole]) == [(0.0, pytest.approx(seconds))]
        assert whole.media[0].data == clips[key].read_bytes()
    pieces = load_file(clips["audio over"])
    spans = _spans(pieces)
    assert len(pieces) == 2
    assert spans[0][0] == 0 and spans[-1][1] == pytest.approx(AUDIO + 0.1)
    assert all(end - start < AUDIO for start, end in spans)
    assert spans[1][0] < spans[0][1]  # overlapping, no gap
    assert all(av_info(p.media[0].data or b"").duration < AUDIO for p in pieces)
    assert len(embedder.embed(pieces)) == 2  # and each piece passes the check
    assert emulator.stats.items == 2


def test_a_video_with_audio_just_over_80_s_is_refused_only_under_use_video_audio(
    clips: dict[str, Path], embedder: Embedder, with_audio: Embedder, emulator: Emulator
) -> None:
    talk = clips["talk over"]
    assert av_info(talk).has_audio and av_info(talk).duration == pytest.approx(80.5)
    with pytest.raises(LimitExceededError) as info:
        with_audio.embed([talk])
    message = str(info.value)
    assert message.startswith(f"item 0 ({talk}): video is 80.5 s long"), message
    assert "(limit: 80 s per video; split it with gemb2.segment.split_media)" in message
    assert emulator.stats.requests == 0

    # under it with its audio; over 80 s but silent (the 120 s limit); not using the audio
    assert len(with_audio.embed([clips["talk under"], clips["silent over"]])) == 2
    assert len(embedder.embed([talk])) == 1
    assert emulator.stats.items == 3


def test_the_loader_splits_a_video_with_audio_over_80_s_only_under_use_video_audio(
    clips: dict[str, Path],
) -> None:
    talk = clips["talk over"]
    pieces = load_file(talk, use_video_audio=True)
    spans = _spans(pieces)
    assert len(pieces) == 2
    assert spans[0][0] == 0 and spans[-1][1] == pytest.approx(80.5, abs=0.1)
    assert all(end - start < WITH_AUDIO for start, end in spans)
    for piece in pieces:
        info = av_info(piece.media[0].data or b"")
        assert info.has_audio and info.duration < WITH_AUDIO  # the track is kept

    for key, use_audio in (("talk over", False), ("talk under", True), ("silent over", True)):
        (whole,) = load_file(clips[key], use_video_audio=use_audio)
        assert whole.media[0].data == clips[key].read_bytes(), key
        assert _spans([whole])[0][1] < VIDEO

"""The sample generators write real files whose descriptive text can be read back."""

from __future__ import annotations

import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image
from pypdf import PdfReader

from gemb2.inputs.probe import av_info, sniff_mime
from gemb2.testing import samples


def _words(text: str) -> str:
    return " ".join(text.split())


def test_png_carries_description_and_draws_the_shape(tmp_path: Path) -> None:
    path = samples.make_png(tmp_path / "c.png", "a red circle", color=(255, 0, 0), size=(100, 80))
    assert path == tmp_path / "c.png"
    assert sniff_mime(path.read_bytes()) == "image/png"
    with Image.open(path) as img:
        assert img.format == "PNG" and img.size == (100, 80)
        assert img.text == {"Title": "a red circle", "Description": "a red circle"}  # type: ignore[attr-defined]
        rgb = img.convert("RGB")
        assert rgb.getpixel((50, 40)) == (255, 0, 0)  # centre: the shape
        assert rgb.getpixel((0, 0)) == (255, 255, 255)  # corner: outside a circle
    square = samples.make_png(
        tmp_path / "s.png", "a blue square", color=(0, 0, 255), shape="square"
    )
    with Image.open(square) as img:
        rgb = img.convert("RGB")
        assert rgb.getpixel((128 - 95, 128 - 95)) == (0, 0, 255)  # a square fills its corner
    with pytest.raises(ValueError, match="shape"):
        samples.make_png(tmp_path / "x.png", "x", shape="hexagon")


def test_png_keeps_non_latin_text(tmp_path: Path) -> None:
    path = samples.make_png(tmp_path / "u.png", "un café et un 猫")
    with Image.open(path) as img:
        assert img.text["Description"] == "un café et un 猫"  # type: ignore[attr-defined]


def test_jpeg_carries_exif_image_description(tmp_path: Path) -> None:
    path = samples.make_jpeg(tmp_path / "s.jpg", "a yellow star", color=(255, 220, 0), shape="star")
    assert sniff_mime(path.read_bytes()) == "image/jpeg"
    with Image.open(path) as img:
        assert img.format == "JPEG"
        assert img.getexif()[samples.EXIF_IMAGE_DESCRIPTION] == "a yellow star"
        assert img.info["comment"] == b"a yellow star"
        r, g, b = img.convert("RGB").getpixel((128, 128))  # type: ignore[misc]
        assert r > 200 and g > 180 and b < 60


def test_jpeg_non_ascii_description_survives_in_the_comment(tmp_path: Path) -> None:
    path = samples.make_jpeg(tmp_path / "u.jpg", "un café")
    with Image.open(path) as img:
        assert img.info["comment"].decode("utf-8") == "un café"


def test_wav_is_pcm_with_tags_and_the_right_tone(tmp_path: Path) -> None:
    path = samples.make_wav(tmp_path / "a.wav", 2.5, description="a piano note", freq=1000.0)
    assert path.read_bytes()[:4] == b"RIFF"
    assert sniff_mime(path.read_bytes()) == "audio/wav"
    with av.open(str(path)) as c:
        assert c.metadata["title"] == "a piano note"
        assert c.metadata["comment"] == "a piano note"
        stream = c.streams.audio[0]
        assert stream.codec_context.name == "pcm_s16le"
        assert stream.codec_context.sample_rate == 16000
        pcm = np.concatenate([f.to_ndarray().reshape(-1) for f in c.decode(audio=0)])
    assert pcm.size == 40000
    spectrum = np.abs(np.fft.rfft(pcm.astype(np.float64)))
    peak_hz = np.argmax(spectrum) * 16000 / pcm.size
    assert peak_hz == pytest.approx(1000.0, abs=2)
    assert av_info(path).duration == pytest.approx(2.5)


def test_wav_without_description_has_no_tags(tmp_path: Path) -> None:
    path = samples.make_wav(tmp_path / "plain.wav", 0.5)
    with av.open(str(path)) as c:
        assert "title" not in c.metadata and "comment" not in c.metadata


def test_wav_with_a_header_that_lies_holds_all_its_samples(tmp_path: Path) -> None:
    path = samples.make_wav(tmp_path / "l.wav", 5, sample_rate=8000, header_seconds=0.5)
    data = path.read_bytes()
    honest = samples.make_wav(tmp_path / "h.wav", 5, sample_rate=8000).read_bytes()
    assert len(data) == len(honest)  # every sample is there
    with av.open(str(path)) as container:  # but the header claims half a second
        assert container.duration == 500_000
    at = data.index(b"data")
    assert int.from_bytes(data[at + 4 : at + 8], "little") == 8000  # 0.5 s of 16-bit mono
    assert int.from_bytes(data[4:8], "little") == at + 8 + 8000 - 8
    assert data[at + 8 :] == honest[honest.index(b"data") + 8 :]


def test_large_png_decodes_to_its_declared_pixels(tmp_path: Path) -> None:
    path = samples.make_large_png(tmp_path / "big.png", 3001, 2003, color=(10, 200, 30))
    assert path.stat().st_size < 3001 * 2003 * 3 / 500  # one colour: it deflates ~1000:1
    with Image.open(path) as img:
        assert img.format == "PNG" and img.size == (3001, 2003) and img.mode == "RGB"
        assert img.getextrema() == ((10, 10), (200, 200), (30, 30))  # every row decoded
    bomb = samples.make_large_png(tmp_path / "bomb.png", 13000, 13000)
    assert bomb.stat().st_size < 700_000


def test_mp3_has_id3_tags(tmp_path: Path) -> None:
    path = samples.make_mp3(tmp_path / "a.mp3", 3, description="a bird singing")
    assert sniff_mime(path.read_bytes()) == "audio/mpeg"
    with av.open(str(path)) as c:
        assert c.format.name == "mp3"
        assert c.metadata["title"] == "a bird singing"
        assert c.metadata["comment"] == "a bird singing"
    assert av_info(path).duration == pytest.approx(3.0, abs=0.1)


def test_mp4_is_h264_with_tags_and_regular_keyframes(tmp_path: Path) -> None:
    path = samples.make_mp4(tmp_path / "v.mp4", 12, description="ocean waves", fps=10)
    assert sniff_mime(path.read_bytes()) == "video/mp4"
    assert samples.video_encoder() in ("libx264", "h264", "mpeg4")
    with av.open(str(path)) as c:
        assert c.metadata["title"] == "ocean waves"
        assert c.metadata["comment"] == "ocean waves"
        video = c.streams.video[0]
        assert video.codec_context.name == (
            "mpeg4" if samples.video_encoder() == "mpeg4" else "h264"
        )
        assert (video.codec_context.width, video.codec_context.height) == (160, 120)
        assert [s.type for s in c.streams] == ["video"]
        keyframes = [
            float(p.pts * p.time_base)
            for p in c.demux(video)
            if p.is_keyframe and p.pts is not None
        ]
    assert keyframes == pytest.approx([0.0, 2.0, 4.0, 6.0, 8.0, 10.0])  # one every 2 s
    info = av_info(path)
    assert info.duration == pytest.approx(12.0, abs=0.01) and not info.has_audio


def test_mp4_with_audio_and_custom_gop(tmp_path: Path) -> None:
    path = samples.make_mp4(tmp_path / "a.mp4", 5, fps=4, size=(64, 48), with_audio=True, gop=8)
    with av.open(str(path)) as c:
        assert sorted(s.type for s in c.streams) == ["audio", "video"]
        assert c.streams.audio[0].codec_context.name == "aac"
        assert c.streams.video[0].average_rate == Fraction(4)
        keyframes = [
            float(p.pts * p.time_base)
            for p in c.demux(video=0)
            if p.is_keyframe and p.pts is not None
        ]
    assert keyframes == pytest.approx([0.0, 2.0, 4.0])
    info = av_info(path)
    assert info.has_audio and info.has_video
    assert info.duration == pytest.approx(5.0, abs=0.1)
    with pytest.raises(ValueError, match="even"):
        samples.make_mp4(tmp_path / "odd.mp4", 1, size=(63, 48))


def test_ten_minute_video_is_quick_to_make(tmp_path: Path) -> None:
    started = time.process_time()
    path = samples.make_mp4(tmp_path / "long.mp4", 600, fps=2, size=(64, 48))
    assert time.process_time() - started < 30
    assert av_info(path).duration == pytest.approx(600.0, abs=0.1)
    assert path.stat().st_size < 5_000_000


def test_pdf_pages_have_a_text_layer(tmp_path: Path) -> None:
    pages = [
        "Volcanoes erupt lava.",
        "Honeybees make honey (and wax) \\ back-slashes survive.",
        "A long page: " + " ".join(f"word{i}" for i in range(60)),
    ]
    path = samples.make_pdf(tmp_path / "p.pdf", pages, title="Facts")
    data = path.read_bytes()
    assert data.startswith(b"%PDF-1.4") and data.rstrip().endswith(b"%%EOF")
    assert sniff_mime(data) == "application/pdf"
    reader = PdfReader(str(path), strict=True)  # strict: the xref must be exact
    assert len(reader.pages) == 3
    assert [_words(p.extract_text()) for p in reader.pages] == pages
    assert reader.metadata is not None and reader.metadata.title == "Facts"
    with pytest.raises(ValueError):
        samples.make_pdf(tmp_path / "empty.pdf", [])


def test_sample_corpus_is_small_mixed_and_self_describing(tmp_path: Path) -> None:
    started = time.perf_counter()
    files = samples.make_sample_corpus(tmp_path / "corpus")
    assert time.perf_counter() - started < 10
    names = {f.name for f in files}
    assert names == {
        "red_circle.png",
        "blue_square.png",
        "green_triangle.png",
        "yellow_star.jpg",
        "piano_note.wav",
        "ocean_waves.mp4",
        "science_facts.pdf",
        "baking_bread.txt",
        "solar_system.txt",
        "marathon_training.txt",
    }
    assert all(f.exists() and f.parent == tmp_path / "corpus" for f in files)
    by_name = {f.name: f for f in files}
    kinds = {n: sniff_mime(by_name[n].read_bytes()) for n in names if not n.endswith(".txt")}
    assert kinds == {
        "red_circle.png": "image/png",
        "blue_square.png": "image/png",
        "green_triangle.png": "image/png",
        "yellow_star.jpg": "image/jpeg",
        "piano_note.wav": "audio/wav",
        "ocean_waves.mp4": "video/mp4",
        "science_facts.pdf": "application/pdf",
    }
    with Image.open(by_name["green_triangle.png"]) as img:
        assert img.text["Description"] == "a green triangle on white"  # type: ignore[attr-defined]
    with av.open(str(by_name["ocean_waves.mp4"])) as c:
        assert c.metadata["title"] == "ocean waves at a beach"
    assert av_info(by_name["piano_note.wav"]).duration == pytest.approx(3.0)
    assert av_info(by_name["ocean_waves.mp4"]).duration == pytest.approx(4.0, abs=0.1)
    reader = PdfReader(str(by_name["science_facts.pdf"]))
    texts = [_words(p.extract_text()) for p in reader.pages]
    assert texts == list(samples.SAMPLE_PDF_PAGES) and len(texts) == 8
    assert len(set(texts)) == 8
    assert by_name["solar_system.txt"].read_text(encoding="utf-8").startswith("The solar system")
    # idempotent: running it again over the same folder works
    assert len(samples.make_sample_corpus(tmp_path / "corpus")) == len(files)

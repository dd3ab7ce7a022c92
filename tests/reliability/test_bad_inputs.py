"""Hostile and broken inputs: each gets a typed error naming the item (before any request),
or is split or skipped as documented; none crashes a job or corrupts a collection."""

from __future__ import annotations

import io
import os
import re
import socket
import struct
import threading
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from rel_helpers import DIMS, dump, persistent, reported_usage, run_cli

from gemb2 import Embedder, Item, Media
from gemb2.errors import (
    InputError,
    LimitExceededError,
    MediaReadError,
    UnsupportedMediaError,
)
from gemb2.inputs.probe import av_info, pdf_page_count
from gemb2.inputs.tokens import estimate_tokens
from gemb2.model.catalog import Limits
from gemb2.model.tasks import PREFIX_TOKENS
from gemb2.testing import samples
from gemb2.testing.emulator import Emulator

LONG_NAME = "n" * 10_000 + ".png"


def _corrupt(src: Path, dst: Path) -> None:
    """The file's first 64 bytes (magic numbers, headers) and then seeded garbage."""
    import random

    data = src.read_bytes()
    rng = random.Random(len(data))
    dst.write_bytes(data[:64] + bytes(rng.randrange(256) for _ in range(len(data) - 64)))


def _truncate(src: Path, dst: Path) -> None:
    data = src.read_bytes()
    dst.write_bytes(data[: len(data) // 2])


def _bomb_png(path: Path) -> None:
    """A valid 8x8 PNG whose header claims 30000x30000 pixels (a decompression bomb)."""
    buf = io.BytesIO()
    Image.new("L", (8, 8)).save(buf, "PNG")
    data = bytearray(buf.getvalue())
    ihdr = bytearray(data[16:29])
    ihdr[0:8] = struct.pack(">II", 30000, 30000)
    data[16:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + bytes(ihdr)))
    path.write_bytes(bytes(data))


def _encrypted_pdf(path: Path) -> None:
    from pypdf import PdfWriter

    writer = PdfWriter()
    writer.add_blank_page(100, 100)
    writer.encrypt("secret password")
    with path.open("wb") as f:
        writer.write(f)


def _long_text(tokens: int) -> str:
    """Text the package estimates at exactly ``tokens`` tokens (short words: 4/3 a word)."""
    text = " ".join(f"w{i % 10}" for i in range(tokens * 3 // 4))
    assert estimate_tokens(text) == tokens
    return text


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of broken, hostile and oversized files, plus two good ones."""
    root = tmp_path_factory.mktemp("bad")
    good = root / "originals"
    good.mkdir()
    png = samples.make_png(good / "p.png", "a red circle", size=(64, 64))
    jpg = samples.make_jpeg(good / "j.jpg", "a yellow star", size=(64, 64))
    wav = samples.make_wav(good / "w.wav", 2, description="a piano")
    mp3 = samples.make_mp3(good / "m.mp3", 2, description="a flute")
    mp4 = samples.make_mp4(good / "v.mp4", 3, description="ocean waves", size=(64, 48))
    pdf = samples.make_pdf(good / "d.pdf", ["volcanoes erupt lava", "bees make honey"])
    outside = root / "outside"
    outside.mkdir()
    (outside / "private.txt").write_text("a private note outside the indexed folder")

    h = root / "hostile"
    h.mkdir()
    for src, ext in ((png, "png"), (jpg, "jpg"), (mp4, "mp4"), (mp3, "mp3"), (wav, "wav")):
        _corrupt(src, h / f"corrupt.{ext}")
        _truncate(src, h / f"truncated.{ext}")
    _corrupt(pdf, h / "corrupt.pdf")
    _truncate(pdf, h / "truncated.pdf")
    _encrypted_pdf(h / "encrypted.pdf")
    for ext in ("png", "wav", "pdf", "txt"):
        (h / f"empty.{ext}").write_bytes(b"")
    (h / "whitespace.txt").write_text("  \n\t \n")
    (h / "text_named.png").write_text("just a sentence in a file named like an image")
    (h / "png_named.txt").write_bytes(png.read_bytes())
    (h / "nul.txt").write_bytes(b"half a line\x00and the rest")
    (h / "invalid_utf8.txt").write_bytes(b"caf\xe9 cr\xe8me \xff\xfe")
    (h / "program.exe").write_bytes(b"MZ\x90\x00\x03" + bytes(200))
    Image.new("RGB", (8, 8), (1, 2, 3)).save(h / "anim.gif")
    (h / "document.docx").write_bytes(b"PK\x03\x04" + bytes(200))
    _bomb_png(h / "bomb.png")
    os.symlink(h / "loop_b", h / "loop_a")
    os.symlink(h / "loop_a", h / "loop_b")
    os.symlink(outside / "private.txt", h / "escape.txt")
    os.symlink(outside, h / "escape_dir")  # a symlinked folder is not followed
    os.mkfifo(h / "pipe.txt")
    (h / "empty_folder").mkdir()
    samples.make_pdf(h / "ten_pages.pdf", [f"page {i} about topic {i}" for i in range(1, 11)])
    samples.make_mp4(
        h / "twenty_minutes.mp4", 1200, description="a long lecture", fps=1, size=(32, 24)
    )
    samples.make_wav(h / "long_audio.wav", 100, description="a long song", sample_rate=8000)
    (h / "long.txt").write_text(_long_text(9000))
    samples.make_png(h / "good.png", "a blue square", shape="square", size=(64, 64))
    (h / "good.txt").write_text("a perfectly ordinary note")
    for i in range(7):
        samples.make_png(good / f"img{i}.png", f"picture {i}", size=(32, 32))
    return root


@dataclass(frozen=True)
class Case:
    """One hostile input for ``Embedder.embed`` and the error it must raise."""

    make: Callable[[Path], Any]
    error: type[InputError]
    reason: str  # a regular expression the message matches


H = "hostile"
AV_BROKEN = "cannot read media|no (audio or )?video stream|no measurable duration"
CASES: dict[str, Case] = {
    "corrupt png": Case(lambda r: r / H / "corrupt.png", MediaReadError, "cannot decode image"),
    "truncated png": Case(lambda r: r / H / "truncated.png", MediaReadError, "truncated"),
    "corrupt jpeg": Case(lambda r: r / H / "corrupt.jpg", MediaReadError, "cannot decode image"),
    "truncated jpeg": Case(lambda r: r / H / "truncated.jpg", MediaReadError, "truncated"),
    "corrupt mp4": Case(lambda r: r / H / "corrupt.mp4", MediaReadError, AV_BROKEN),
    "truncated mp4": Case(lambda r: r / H / "truncated.mp4", MediaReadError, AV_BROKEN),
    "corrupt mp3": Case(lambda r: r / H / "corrupt.mp3", MediaReadError, AV_BROKEN),
    "corrupt wav": Case(lambda r: r / H / "corrupt.wav", MediaReadError, "WAV"),
    "truncated wav": Case(lambda r: r / H / "truncated.wav", MediaReadError, "WAV is truncated"),
    "corrupt pdf": Case(lambda r: r / H / "corrupt.pdf", MediaReadError, "cannot read PDF"),
    "truncated pdf": Case(lambda r: r / H / "truncated.pdf", MediaReadError, "cannot read PDF"),
    "encrypted pdf": Case(lambda r: r / H / "encrypted.pdf", MediaReadError, "cannot read PDF"),
    "zero-byte png": Case(lambda r: r / H / "empty.png", MediaReadError, "file is empty"),
    "zero-byte wav": Case(lambda r: r / H / "empty.wav", MediaReadError, "file is empty"),
    "zero-byte pdf": Case(lambda r: r / H / "empty.pdf", MediaReadError, "file is empty"),
    "zero-byte txt": Case(
        lambda r: Item.from_path(r / H / "empty.txt"), InputError, "text is empty"
    ),
    "text named .png": Case(
        lambda r: r / H / "text_named.png", UnsupportedMediaError, "content is text"
    ),
    "NUL bytes in a .txt": Case(
        lambda r: r / H / "nul.txt", UnsupportedMediaError, "not a recognised media type"
    ),
    "exe": Case(lambda r: r / H / "program.exe", UnsupportedMediaError, "does not accept"),
    "gif": Case(lambda r: r / H / "anim.gif", UnsupportedMediaError, "image/gif"),
    "docx (zip)": Case(lambda r: r / H / "document.docx", UnsupportedMediaError, "zip"),
    "decompression bomb": Case(
        lambda r: r / H / "bomb.png", MediaReadError, "too large to decode safely"
    ),
    "symlink loop": Case(lambda r: r / H / "loop_a", MediaReadError, "symbolic links"),
    "fifo": Case(lambda r: r / H / "pipe.txt", MediaReadError, "not a regular file"),
    "directory": Case(lambda r: r / H / "empty_folder", MediaReadError, "is a directory"),
    "missing file": Case(lambda r: r / H / "nowhere.png", MediaReadError, "no such file"),
    "10,000-character name": Case(
        lambda r: r / H / LONG_NAME, MediaReadError, "File name too long"
    ),
    "random bytes": Case(
        lambda r: bytes(range(256)) * 4, UnsupportedMediaError, "not a recognised media type"
    ),
    "7 images in one item": Case(
        lambda r: [r / "originals" / f"img{i}.png" for i in range(7)],
        LimitExceededError,
        "7 image parts in one item",
    ),
    "2 audio in one item": Case(
        lambda r: [r / "originals" / "w.wav", r / "originals" / "m.mp3"],
        LimitExceededError,
        "2 audio parts",
    ),
    "10-page PDF as one item": Case(
        lambda r: r / H / "ten_pages.pdf", LimitExceededError, "PDF has 10 pages"
    ),
    "20-minute video as one item": Case(
        lambda r: r / H / "twenty_minutes.mp4", LimitExceededError, r"video is 1200\.0 s long"
    ),
    "100 s audio as one item": Case(
        lambda r: r / H / "long_audio.wav", LimitExceededError, r"audio is 100\.0 s long"
    ),
    "9,000-token text as one item": Case(lambda r: _long_text(9000), LimitExceededError, "tokens"),
    "text that fits only without its task prefix": Case(
        lambda r: _long_text(8190), LimitExceededError, "with its task prefix"
    ),
    "invalid UTF-8 decoded with surrogateescape": Case(
        lambda r: (r / H / "invalid_utf8.txt").read_bytes().decode("utf-8", "surrogateescape"),
        InputError,
        "not valid Unicode",
    ),
    "empty interleaved item": Case(lambda r: [], InputError, "item is empty"),
    "part of an unknown type": Case(
        lambda r: ["a caption", 42], InputError, "cannot embed a part of type int"
    ),
}


@pytest.fixture
def embedder(emulator: Emulator) -> Iterator[Embedder]:
    with Embedder(base_url=emulator.base_url, dimensions=DIMS) as e:
        yield e


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_a_hostile_input_gets_a_typed_error_naming_it_before_any_request(
    case: str, hostile: Path, embedder: Embedder, emulator: Emulator
) -> None:
    c = CASES[case]
    value = c.make(hostile)
    with pytest.raises(c.error) as info:
        embedder.embed(["a good text before", value, "a good text after"])
    err = info.value
    message = str(err)
    assert err.item == 1 and message.startswith("item 1"), message
    assert re.search(c.reason, message), message
    assert len(message) < 700, f"message of {len(message)} characters"
    assert emulator.stats.requests == 0  # checked before anything was sent


def test_the_case_list_covers_at_least_30_hostile_inputs() -> None:
    assert len(CASES) >= 30


def test_broken_files_that_still_hold_media_are_embedded_as_documented(
    hostile: Path, embedder: Embedder, emulator: Emulator
) -> None:
    """A PNG named .txt is an image (content decides, not the name); a truncated MP3 is
    the shorter audio it still holds (MP3 frames stand alone); text with NUL bytes is text."""
    h = hostile / H
    png_as_txt = Item.from_path(h / "png_named.txt")
    assert png_as_txt.modality == "image"
    assert av_info((h / "truncated.mp3").read_bytes()).duration > 0
    vectors = embedder.embed([png_as_txt, h / "truncated.mp3", "a\x00b"])
    assert len(vectors) == 3 and all(len(v) == DIMS for v in vectors)
    assert emulator.stats.items == 3


def test_an_inline_payload_over_the_limit_is_refused_naming_the_item(
    hostile: Path, emulator: Emulator
) -> None:
    small = Limits(max_inline_bytes=2_000)
    embedder = Embedder(base_url=emulator.base_url, dimensions=DIMS, limits=small)
    with pytest.raises(LimitExceededError, match=r"item 1 .*inline payload"):
        embedder.embed(["fine", hostile / "originals" / "v.mp4"])
    assert emulator.stats.requests == 0


# -- URLs ----------------------------------------------------------------------------------


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A socket that accepts connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}/picture.png"
    stop.set()
    t.join()
    for c in held:
        c.close()
    server.close()


def test_a_url_that_never_answers_times_out_with_a_typed_error(silent_server: str) -> None:
    t0 = time.monotonic()
    with pytest.raises(MediaReadError, match="cannot download") as info:
        Media.from_url(silent_server, timeout=0.5)
    assert time.monotonic() - t0 < 10
    assert info.value.source == silent_server


@pytest.mark.parametrize(
    ("uri", "error", "reason"),
    [
        ("ftp://example.com/picture.png", InputError, "scheme 'ftp' is not supported"),
        ("gopher://example.com/1", InputError, "scheme 'gopher' is not supported"),
        ("file:///nonexistent/picture.png", MediaReadError, "no such file"),
        ("javascript:alert(1)", MediaReadError, "no such file"),
    ],
)
def test_uris_of_other_schemes_are_refused_naming_the_item(
    uri: str, error: type[Exception], reason: str, hostile: Path, emulator: Emulator
) -> None:
    """Through LangChain's ``embed_image`` (the hook ``Chroma.add_images`` calls)."""
    from langchain_gemb2 import GeminiEmbeddings

    emb = GeminiEmbeddings(base_url=emulator.base_url, dimensions=DIMS)
    with pytest.raises(error) as info:
        emb.embed_image([str(hostile / H / "good.png"), uri])
    assert str(info.value).startswith("item 1") and reason in str(info.value)
    assert emulator.stats.requests == 0


# -- jobs and collections -------------------------------------------------------------------

SKIPPED = {  # file -> a regular expression its "skipped" line matches
    "corrupt.png": "cannot decode image",
    "truncated.png": "truncated",
    "corrupt.jpg": "cannot decode image",
    "truncated.jpg": "truncated",
    "corrupt.mp4": AV_BROKEN,
    "truncated.mp4": AV_BROKEN,
    "corrupt.mp3": AV_BROKEN,
    "corrupt.wav": "WAV",
    "truncated.wav": "WAV is truncated",
    "corrupt.pdf": "cannot read PDF",
    "truncated.pdf": "cannot read PDF",
    "encrypted.pdf": "PDF is encrypted",
    "empty.png": "file is empty",
    "empty.wav": "file is empty",
    "empty.pdf": "file is empty",
    "empty.txt": "file is empty",
    "whitespace.txt": "text file is empty",
    "text_named.png": "content is text/plain",
    "nul.txt": "not UTF-8 text",
    "invalid_utf8.txt": "not UTF-8 text",
    "program.exe": "unsupported file type",
    "anim.gif": "unsupported file type: content is image/gif",
    "document.docx": "unsupported file type",
    "bomb.png": "too large to decode safely",
    "loop_a": "Too many levels of symbolic links",
    "loop_b": "Too many levels of symbolic links",
    "escape.txt": "symlink points outside",
    "pipe.txt": "not a regular file",
}


def test_cli_skips_what_it_cannot_use_splits_what_is_too_long_and_stays_consistent(
    capsys: pytest.CaptureFixture[str], hostile: Path, emulator: Emulator, tmp_path: Path
) -> None:
    h = hostile / H
    argv = ["index", str(h), "--db", str(tmp_path / "db"), "--base-url", emulator.base_url]
    argv += ["--dimensions", str(DIMS), "-q"]
    code, out, err = run_cli(capsys, *argv)
    assert code == 0, err
    assert "Traceback" not in err
    for name, reason in SKIPPED.items():
        lines = [ln for ln in err.splitlines() if ln.startswith(f"skipped {h / name}:")]
        assert len(lines) == 1, (name, err)
        assert re.search(reason, lines[0]), lines[0]
    assert f"{len(SKIPPED)} skipped" in out

    records = dump(persistent(tmp_path / "db").get_collection("gemb2"))
    by_file: dict[str, list[dict[str, Any]]] = {}
    for _, meta in records.values():
        by_file.setdefault(Path(meta["source"]).name, []).append(meta)
    assert set(by_file) == {
        "png_named.txt",
        "truncated.mp3",
        "ten_pages.pdf",
        "twenty_minutes.mp4",
        "long_audio.wav",
        "long.txt",
        "good.png",
        "good.txt",
    }
    assert by_file["png_named.txt"][0]["modality"] == "image"
    pages = sorted((m["page_start"], m["page_end"]) for m in by_file["ten_pages.pdf"])
    assert pages == [(1, 6), (7, 10)]
    video = sorted(by_file["twenty_minutes.mp4"], key=lambda m: m["piece"])
    assert len(video) >= 10 and all(m["end_seconds"] - m["start_seconds"] <= 120 for m in video)
    assert video[0]["start_seconds"] == 0 and video[-1]["end_seconds"] == pytest.approx(1200, abs=2)
    audio = by_file["long_audio.wav"]
    assert len(audio) == 2 and all(m["end_seconds"] - m["start_seconds"] <= 80 for m in audio)
    assert len(by_file["long.txt"]) == 2
    collection = persistent(tmp_path / "db").get_collection("gemb2")
    chunks = collection.get(where={"source": str(h / "long.txt")}, include=["documents"])
    assert all(estimate_tokens(d) <= 8192 - PREFIX_TOKENS for d in chunks["documents"])
    assert emulator.stats.items == len(records)  # every piece sent once, none refused
    documents = collection.get(include=["documents"])["documents"]
    assert not any("private note" in (d or "") for d in documents)  # outside: never read

    # a second run finds everything stored: no request, nothing changed
    emulator.reset_stats()
    code, out, err = run_cli(capsys, *argv)
    assert code == 0, err
    assert emulator.stats.requests == 0
    assert reported_usage(out) == (0, 0, 0)
    assert dump(persistent(tmp_path / "db").get_collection("gemb2")) == records


def test_split_pieces_fit_the_model(hostile: Path) -> None:
    """What the CLI stored for the oversized files really fits: checked on the pieces."""
    from gemb2.ingest.loading import load_file

    pdf = load_file(hostile / H / "ten_pages.pdf")
    assert [pdf_page_count(it.media[0].data or b"") for it in pdf] == [6, 4]
    video = load_file(hostile / H / "twenty_minutes.mp4")
    assert all(av_info(it.media[0].data or b"").duration <= 120.5 for it in video)


def test_a_chroma_add_with_a_broken_file_writes_nothing(
    hostile: Path, emulator: Emulator, tmp_path: Path
) -> None:
    from gemb2.stores.chroma import GeminiEmbeddingFunction, open_collection

    ef = GeminiEmbeddingFunction(base_url=emulator.base_url, dimensions=DIMS)
    collection = open_collection(persistent(tmp_path / "db"), "media", ef)
    collection.add(ids=["first"], documents=["already stored"])
    with pytest.raises(MediaReadError, match="truncated"):
        collection.add(
            ids=["good", "bad"],
            uris=[str(hostile / H / "good.png"), str(hostile / H / "truncated.png")],
        )
    assert collection.get()["ids"] == ["first"]
    assert emulator.stats.items == 1


def test_haystack_reports_bad_documents_and_embeds_the_rest(
    hostile: Path, emulator: Emulator
) -> None:
    from haystack import Document
    from haystack_integrations.components.embedders.gemb2 import GeminiDocumentEmbedder

    docs = [Document(id="ok", content="a good text")]
    docs += [
        Document(id=name, content="", meta={"file_path": name})
        for name in ("corrupt.png", "truncated.wav", "bomb.png", "good.png")
    ]
    docs.append(Document(id="escape", content="", meta={"file_path": "../outside/private.png"}))
    embedder = GeminiDocumentEmbedder(
        api_base_url=emulator.base_url,
        dimensions=DIMS,
        root_path=str(hostile / H),
        raise_on_failure=False,
        progress_bar=False,
    )
    result = embedder.run(docs)
    embedded = {d.id for d in result["documents"] if d.embedding is not None}
    assert embedded == {"ok", "good.png"}
    failed = {f["id"]: f["error"] for f in result["meta"]["failed"]}
    assert set(failed) == {"corrupt.png", "truncated.wav", "bomb.png", "escape"}
    assert "escapes root_path" in failed["escape"]
    assert "too large to decode safely" in failed["bomb.png"]
    assert emulator.stats.items == 2
    assert Counter(len(d.embedding or []) for d in result["documents"]) == {DIMS: 2, 0: 4}


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("nowhere", "no such file or directory"),
        (LONG_NAME, "File name too long"),
        ("hostile/pipe.txt", "not a regular file"),
    ],
)
def test_cli_refuses_a_bad_named_path_with_a_short_clear_error(
    name: str,
    reason: str,
    capsys: pytest.CaptureFixture[str],
    hostile: Path,
    emulator: Emulator,
    tmp_path: Path,
) -> None:
    argv = ["index", str(hostile / name), "--db", str(tmp_path / "db")]
    code, _, err = run_cli(capsys, *argv, "--base-url", emulator.base_url, "-q")
    assert code == 2
    last = err.strip().splitlines()[-1]
    assert last.startswith("gemb2 index: error: ") and reason in last, last
    assert len(last) < 400 and "Traceback" not in err
    assert emulator.stats.requests == 0

"""What the wrappers used to keep their own copies of, now in the core and shared: media
detection (``gemb2.inputs.detect``), the piece schema, the text budget for metadata a
framework adds and the page a record names (``gemb2.ingest.pieces``). On real files
made by ``gemb2.testing.samples``; imported from their core paths, so a function moved
back into a wrapper fails here."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pytest
from pypdf import PdfReader

from gemb2 import InputError, Media, get_model
from gemb2.ingest.loading import load_file
from gemb2.ingest.pieces import (
    BOOKKEEPING_KEYS,
    PIECE_KEYS,
    PdfPages,
    describe,
    is_piece,
    label,
    media_meta,
    pdf_page,
    text_limits,
    text_pieces,
)
from gemb2.inputs.detect import (
    MEDIA_MODALITIES,
    content_hash,
    is_file_read_as_text,
    media_type,
    sniff_file,
)
from gemb2.inputs.tokens import estimate_tokens
from gemb2.model.tasks import PREFIX_TOKENS
from gemb2.testing import samples

LIMITS = get_model("gemini-embedding-2").limits
PAGES = ["volcanoes erupt lava", "honeybees make honey", "glaciers carve valleys"]
SENTENCE = "Honeybees store nectar in wax combs and fan it with their wings until it thickens. "
LONG_TEXT = SENTENCE * 900  # about 15,000 tokens: several pieces at the model's limit


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("core-glue")
    return {
        "pdf": samples.make_pdf(d / "three.pdf", PAGES),
        "book": samples.make_pdf(d / "book.pdf", [f"page {i} of the book" for i in range(1, 9)]),
        "png": samples.make_png(d / "red.png", "a red circle"),
        "wav": samples.make_wav(d / "tone.wav", 2, description="a tone"),
        "mp4": samples.make_mp4(d / "clip.mp4", 3, fps=2, size=(32, 32)),
        "txt": _write(d / "notes.txt", LONG_TEXT),
    }


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# -- gemb2.inputs.detect -----------------------------------------------------------------


def test_media_type_from_declared_type_then_suffix() -> None:
    assert media_type("photo.PNG") == "image/png"
    assert media_type(Path("talk.mp3")) == "audio/mpeg"
    assert media_type("https://example.com/clip.mp4?sig=1") == "video/mp4"
    assert media_type("report.pdf") == "application/pdf"
    assert media_type("notes.txt") is None and media_type("archive.zip") is None
    # a declared type wins over the suffix, also when it declares text
    assert media_type("blob.bin", "image/jpg") == "image/jpeg"
    assert media_type("photo.png", "text/plain") is None
    assert media_type("photo.png", "") == "image/png"
    assert frozenset({"image", "audio", "video", "pdf"}) == MEDIA_MODALITIES


def test_sniff_file_reads_the_type_from_the_bytes(files: dict[str, Path], tmp_path: Path) -> None:
    assert sniff_file(files["pdf"]) == "application/pdf"
    assert sniff_file(files["wav"]) == "audio/wav"
    assert sniff_file(files["mp4"]) == "video/mp4"
    disguised = tmp_path / "image.dat"
    disguised.write_bytes(files["png"].read_bytes())
    assert sniff_file(disguised) == "image/png"
    assert sniff_file(files["txt"]) is None
    (tmp_path / "empty").write_bytes(b"")
    assert sniff_file(tmp_path / "empty") is None


def test_is_file_read_as_text(files: dict[str, Path]) -> None:
    raw = files["png"].read_bytes()
    assert is_file_read_as_text(raw.decode("utf-8", "ignore"), files["png"])
    assert is_file_read_as_text(raw.decode("utf-8", "replace"), files["png"])
    assert not is_file_read_as_text("a red circle", files["png"])
    assert not is_file_read_as_text(raw.decode("utf-8", "ignore"), files["wav"])
    assert not is_file_read_as_text("anything", files["png"].parent / "missing.png")


def test_content_hash_is_of_what_gets_sent(files: dict[str, Path]) -> None:
    png = Media.from_path(files["png"])
    wav = Media.from_path(files["wav"])
    assert content_hash([png]) == hashlib.sha256(files["png"].read_bytes()).hexdigest()
    assert content_hash([png]) != content_hash([wav]) != content_hash([png, wav])
    url = Media.from_url("gs://bucket/a.png")
    assert content_hash([url]) == hashlib.sha256(b"gs://bucket/a.png").hexdigest()


# -- gemb2.ingest.pieces: the schema ------------------------------------------------------


def test_every_piece_load_file_cuts_carries_the_schema(files: dict[str, Path]) -> None:
    small = LIMITS.model_copy(update={"max_pdf_pages": 6, "max_tokens": 2048})
    for name, path in files.items():
        items = load_file(path, small)
        assert items, name
        for i, item in enumerate(items):
            meta = item.metadata
            assert set(meta) <= set(PIECE_KEYS), (name, sorted(set(meta) - set(PIECE_KEYS)))
            assert is_piece(meta) and meta["piece"] == i and meta["pieces"] == len(items)
    assert set(BOOKKEEPING_KEYS) < set(PIECE_KEYS)


def test_describe_is_the_text_or_the_label(files: dict[str, Path]) -> None:
    book = load_file(files["book"])
    assert [describe(it) for it in book] == ["[pdf] book.pdf pages 1-6", "[pdf] book.pdf pages 7-8"]
    assert describe(book[1]) == label(book[1].metadata)
    clip = load_file(files["mp4"])
    assert describe(clip[0]) == "[video] clip.mp4 0.0-3.0 s"
    assert describe(load_file(files["png"])[0]) == "[image] red.png"
    text = text_pieces("a short note", LIMITS, source="note")
    assert describe(text[0]) == "a short note"


def test_media_meta_describes_held_media_as_one_piece(files: dict[str, Path]) -> None:
    png = Media.from_bytes(files["png"].read_bytes(), name="<bytes>")
    meta = media_meta([png])
    assert meta == {
        "source": "<bytes>",
        "file_hash": content_hash([png]),
        "modality": "image",
        "mime_type": "image/png",
        "piece": 0,
        "pieces": 1,
    }
    assert is_piece(meta) and set(meta) <= set(PIECE_KEYS)
    both = media_meta([png, Media.from_path(files["wav"])])
    assert both["modality"] == "interleaved" and both["file_hash"] != meta["file_hash"]
    assert media_meta([Media.from_url("gs://bucket/a.png")])["source"] == "gs://bucket/a.png"


# -- gemb2.ingest.pieces: text and its budget ---------------------------------------------


def test_text_pieces_are_what_load_file_cuts_from_the_same_text(files: dict[str, Path]) -> None:
    from_file = load_file(files["txt"], LIMITS)
    in_memory = text_pieces(LONG_TEXT, LIMITS, source=str(files["txt"]))
    assert len(in_memory) == len(from_file) > 1
    assert [it.text for it in in_memory] == [it.text for it in from_file]
    assert [it.metadata for it in in_memory] == [it.metadata for it in from_file]
    assert in_memory[0].metadata["file_hash"] == hashlib.sha256(LONG_TEXT.encode()).hexdigest()
    for item in in_memory:
        meta = item.metadata
        assert LONG_TEXT[meta["char_start"] : meta["char_end"]] == item.text
        assert estimate_tokens(item.text) <= LIMITS.max_tokens - PREFIX_TOKENS
    assert text_pieces("   \n", LIMITS, source="blank") == []
    whole = text_pieces("one line", LIMITS, source="x")
    assert [(it.text, it.metadata["char_start"], it.metadata["char_end"]) for it in whole] == [
        ("one line", 0, 8)
    ]


def test_text_limits_leave_room_for_what_a_framework_adds(files: dict[str, Path]) -> None:
    added = "file_path: /data/notes.txt\ntitle: a long note about honeybees"
    room = LIMITS.max_tokens - estimate_tokens(added)
    assert text_limits(LIMITS).max_tokens == LIMITS.max_tokens
    assert text_limits(LIMITS, added_text=added).max_tokens == room
    assert text_limits(LIMITS, chunk_tokens=500).max_tokens == 500 + PREFIX_TOKENS
    assert text_limits(LIMITS, added_text=added, chunk_tokens=10**6).max_tokens == room
    assert text_limits(LIMITS, added_text="word " * 20000).max_tokens == 1 + PREFIX_TOKENS
    assert text_limits(LIMITS, chunk_tokens=500).max_pdf_pages == LIMITS.max_pdf_pages
    # a file and the same text in memory are cut alike under them: chunks of at most 500
    limits = text_limits(LIMITS, added_text=added, chunk_tokens=500)
    from_file = load_file(files["txt"], limits)
    in_memory = text_pieces(LONG_TEXT, limits, source="notes")
    assert [it.text for it in from_file] == [it.text for it in in_memory]
    assert max(estimate_tokens(it.text) for it in from_file) <= 500
    # and each, with the added text and the task prefix in front, fits the model
    for item in text_pieces(LONG_TEXT, text_limits(LIMITS, added_text=added), source="n"):
        assert estimate_tokens(added) + estimate_tokens(item.text) + PREFIX_TOKENS <= 8192


# -- gemb2.ingest.pieces: the page a record names -----------------------------------------


def test_pdf_page_is_that_page_as_its_own_pdf(files: dict[str, Path]) -> None:
    media = Media.from_path(files["pdf"])
    cache: PdfPages = {}
    for number, words in enumerate(PAGES, start=1):
        page = pdf_page(media, number, pages=cache, source="document 7")
        reader = PdfReader(io.BytesIO(page.read() or b""))
        assert len(reader.pages) == 1
        assert words in reader.pages[0].extract_text()
        assert page.mime_type == "application/pdf"
        assert page.name == f"{media.name} (page {number})"
        assert (page.metadata["page_start"], page.metadata["page_end"]) == (number, number)
    assert list(cache) == [media.digest] and len(cache[media.digest]) == 3  # split once
    again = pdf_page(Media.from_path(files["pdf"]), 2)  # no cache: fine too
    assert again.read() == cache[media.digest][1]


@pytest.mark.parametrize("page", [0, -1, True, "2", 1.0, None])
def test_pdf_page_refuses_what_is_not_a_page_number(files: dict[str, Path], page: object) -> None:
    media = Media.from_path(files["pdf"])
    with pytest.raises(InputError, match=r"meta\['page_number'\] must be an integer >= 1") as info:
        pdf_page(media, page, source="document 7", field="meta['page_number']")
    assert info.value.source == "document 7"
    with pytest.raises(InputError, match=r"^.*page_number must be an integer >= 1, got"):
        pdf_page(media, page)


def test_pdf_page_past_the_end_and_not_a_pdf(files: dict[str, Path]) -> None:
    media = Media.from_path(files["pdf"])
    with pytest.raises(InputError, match="page_number is 4 but the PDF has 3 pages") as info:
        pdf_page(media, 4, source="document 7")
    assert info.value.source == f"document 7 ({media.name})"
    with pytest.raises(InputError, match="names a page, but the media is image/png"):
        pdf_page(Media.from_path(files["png"]), 1)

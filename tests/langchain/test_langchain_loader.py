"""MixedMediaLoader and add_media_documents: a folder of mixed media as LangChain Documents,
split to fit the model, stored in Chroma as media vectors so text queries find them."""

from __future__ import annotations

import shutil
from pathlib import Path

import chromadb
import pytest
from langchain_chroma import Chroma
from langchain_core.documents import Document
from langchain_core.embeddings import DeterministicFakeEmbedding

from gemb2 import InputError, Limits, MediaReadError, UnsupportedMediaError
from gemb2.testing import samples
from gemb2.testing.emulator import Emulator
from langchain_gemb2 import GeminiEmbeddings, MixedMediaLoader, add_media_documents

DIMS = 768
LIMITS = Limits(max_audio_seconds=5.0)  # so a 10 s recording splits into pieces


@pytest.fixture
def folder(media_dir: Path, tmp_path: Path) -> Path:
    d = tmp_path / "corpus"
    shutil.copytree(media_dir, d)
    (d / "docs").mkdir()
    samples.make_pdf(d / "docs" / "eight.pdf", [f"page {i} is about topic{i}" for i in range(1, 9)])
    samples.make_wav(d / "docs" / "long.wav", 10, description="a long organ chord")
    (d / "docs" / "notes.md").write_text("meeting notes: the budget was approved\n")
    (d / ".hidden.txt").write_text("never loaded")
    return d


@pytest.fixture
def emb(emulator: Emulator) -> GeminiEmbeddings:
    return GeminiEmbeddings(base_url=emulator.base_url, dimensions=DIMS, limits=LIMITS)


def _by_name(docs: list[Document]) -> dict[str, list[Document]]:
    out: dict[str, list[Document]] = {}
    for d in docs:
        out.setdefault(Path(d.metadata["source"]).name, []).append(d)
    return out


def test_loader_splits_and_labels(folder: Path, emb: GeminiEmbeddings) -> None:
    docs = MixedMediaLoader(folder, embeddings=emb).load()
    by_name = _by_name(docs)
    assert sorted(by_name) == sorted(
        [
            "blue_square.png",
            "eight.pdf",
            "long.wav",
            "notes.md",
            "piano.wav",
            "red_circle.png",
            "three_pages.pdf",
            "waves.mp4",
            "yellow_star.jpg",
        ]
    )
    pdf = by_name["eight.pdf"]
    assert [(d.metadata["page_start"], d.metadata["page_end"]) for d in pdf] == [(1, 6), (7, 8)]
    assert [(d.metadata["piece"], d.metadata["pieces"]) for d in pdf] == [(0, 2), (1, 2)]
    assert pdf[1].page_content.startswith("[pdf] ") and "pages 7-8" in pdf[1].page_content
    audio = by_name["long.wav"]
    assert len(audio) == 3
    assert audio[0].metadata["start_seconds"] == 0.0
    assert audio[-1].metadata["end_seconds"] == pytest.approx(10.0)
    assert all(d.metadata["end_seconds"] - d.metadata["start_seconds"] <= 5.0 for d in audio)
    (notes,) = by_name["notes.md"]
    assert notes.page_content == "meeting notes: the budget was approved\n"
    assert notes.metadata["modality"] == "text"
    (red,) = by_name["red_circle.png"]
    assert red.metadata["modality"] == "image" and red.metadata["mime_type"] == "image/png"
    assert red.metadata["source"] == str(folder / "red_circle.png")
    assert len(red.metadata["file_hash"]) == 64
    # ids are stable: loading again names the same pieces the same way
    again = MixedMediaLoader(folder, embeddings=emb).load()
    assert [d.id for d in again] == [d.id for d in docs]
    assert len({d.id for d in docs}) == len(docs)


def test_media_documents_in_chroma_answer_text_queries(
    folder: Path, emb: GeminiEmbeddings, emulator: Emulator, tmp_path: Path
) -> None:
    docs = MixedMediaLoader(folder, embeddings=emb).load()
    store = Chroma("media", emb, client=chromadb.PersistentClient(path=str(tmp_path / "db")))
    ids = add_media_documents(store, docs)
    assert ids == [d.id for d in docs]
    # two pieces of the steady organ chord (0-5 s, 3-8 s) are byte-identical: sent once
    assert emulator.stats.items == len(docs) - 1
    # the media went over the wire as media, not as their labels
    parts = [r["content"]["parts"] for b in emulator.stats.last_bodies for r in b["requests"]]
    inline = [p[0].get("inline_data") or p[0].get("inlineData") for p in parts]
    mimes = sorted(i.get("mime_type") or i.get("mimeType") for i in inline if i)
    assert mimes.count("application/pdf") == 3 and mimes.count("audio/wav") == 3
    assert [p[0]["text"] for p in parts if "text" in p[0]] == [
        "title: none | text: meeting notes: the budget was approved\n"
    ]
    got = store.get(include=["embeddings"])
    assert len(got["ids"]) == len(docs) and all(len(v) == DIMS for v in got["embeddings"])

    hit = store.similarity_search("topic8", k=1)[0]
    assert Path(hit.metadata["source"]).name == "eight.pdf"
    assert (hit.metadata["page_start"], hit.metadata["page_end"]) == (7, 8)
    hit = store.similarity_search("topic2", k=1)[0]
    assert (hit.metadata["page_start"], hit.metadata["page_end"]) == (1, 6)
    for query, name in {
        "ocean waves at a beach": "waves.mp4",
        "a red circle": "red_circle.png",
        "was the budget approved": "notes.md",
    }.items():
        assert Path(store.similarity_search(query, k=1)[0].metadata["source"]).name == name
    hits = store.similarity_search_by_image(str(folder / "yellow_star.jpg"), k=1)
    assert Path(hits[0].metadata["source"]).name == "yellow_star.jpg"

    # adding the same pieces again overwrites, never duplicates
    add_media_documents(store, docs)
    assert store._collection.count() == len(docs)


async def test_async_media_documents_match_sync(folder: Path, emb: GeminiEmbeddings) -> None:
    docs = MixedMediaLoader(folder / "docs", embeddings=emb).load()
    assert await emb.aembed_media_documents(docs) == emb.embed_media_documents(docs)


def test_changed_or_missing_file_is_refused(folder: Path, emb: GeminiEmbeddings) -> None:
    docs = MixedMediaLoader(folder / "docs", embeddings=emb).load()
    samples.make_pdf(folder / "docs" / "eight.pdf", ["rewritten"] * 8)
    with pytest.raises(InputError, match="changed since it was split") as info:
        emb.embed_media_documents(docs)
    assert info.value.item == 0
    (folder / "docs" / "eight.pdf").unlink()
    with pytest.raises(MediaReadError, match="item 0.*eight.pdf.*no such file"):
        emb.embed_media_documents(docs)
    # pieces cut again for other limits do not silently map onto these
    from gemb2.ingest.pieces import PIECES

    PIECES.clear()  # as in a new process: nothing remembered, the file is cut again
    wide = GeminiEmbeddings(dimensions=DIMS, limits=Limits(max_audio_seconds=80.0))
    audio = [d for d in docs if d.metadata["modality"] == "audio"]
    with pytest.raises(InputError, match="no piece"):
        wide.embed_media_documents(audio)


def test_unsupported_files_raise_or_are_skipped(folder: Path, emb: GeminiEmbeddings) -> None:
    (folder / "docs" / "data.bin").write_bytes(b"\x00\x01 not a known format")
    with pytest.raises(UnsupportedMediaError):
        MixedMediaLoader(folder / "docs", embeddings=emb).load()
    docs = MixedMediaLoader(folder / "docs", embeddings=emb, silent_errors=True).load()
    assert "data.bin" not in _by_name(docs)
    assert len(docs) == 2 + 3 + 1  # pdf pieces, audio pieces, notes


def test_plain_documents_and_other_embeddings(
    emb: GeminiEmbeddings, emulator: Emulator, tmp_path: Path
) -> None:
    plain = [Document(page_content="just some text", metadata={"k": 1})]
    assert len(emb.embed_media_documents(plain)[0]) == DIMS
    other = Chroma(
        "fake",
        DeterministicFakeEmbedding(size=8),
        client=chromadb.PersistentClient(path=str(tmp_path / "db")),
    )
    with pytest.raises(TypeError, match="must be GeminiEmbeddings"):
        add_media_documents(other, plain)

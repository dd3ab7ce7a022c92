"""Identical content is paid for once, through the API: the Embedder sends identical items
of one call once (and counts it honestly), and ``index_paths`` writes a record per path,
taking the vector of content already stored instead of a call, within a run and across
runs, with no vector cache at all. File names that are not UTF-8 get a reversible name."""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path

import chromadb
import numpy as np
import pytest
from chromadb.config import Settings
from rel_helpers import DIMS, dump

from gemb2 import Embedder, Media
from gemb2.ingest.indexer import index_paths
from gemb2.stores.chroma import GeminiEmbeddingFunction, open_collection
from gemb2.testing import samples
from gemb2.testing.emulator import Emulator


@pytest.fixture
def embedder(emulator: Emulator) -> Embedder:
    return Embedder(base_url=emulator.base_url, dimensions=DIMS)


def collection(tmp_path: Path, embedder: Embedder) -> object:
    client = chromadb.EphemeralClient(settings=Settings(anonymized_telemetry=False))
    ef = GeminiEmbeddingFunction(base_url=embedder.settings.base_url, dimensions=DIMS)
    name = f"c{abs(hash(tmp_path)) % 10**8}"
    return open_collection(client, name, ef)


def test_identical_items_in_one_call_are_sent_once_and_each_gets_the_vector(
    emulator: Emulator, embedder: Embedder, media_dir: Path
) -> None:
    png = (media_dir / "red_circle.png").read_bytes()
    inputs = [
        "a cat",
        "a dog",
        "a cat",
        Media.from_bytes(png),
        Media.from_bytes(png),  # equal bytes, another object
        Media.from_bytes((media_dir / "blue_square.png").read_bytes()),
        "a cat",
    ]
    landed: dict[int, list[float]] = {}
    vectors = embedder.embed(inputs, on_batch=lambda i, v: landed.update(zip(i, v, strict=True)))
    assert emulator.stats.items == 4  # cat, dog, the red circle, the blue square
    assert len(vectors) == 7 and sorted(landed) == list(range(7))
    assert vectors[0] == vectors[2] == vectors[6] and vectors[3] == vectors[4]
    assert vectors[0] != vectors[1] and vectors[3] != vectors[5]
    assert all(landed[i] == vectors[i] for i in range(7))
    usage = embedder.usage
    assert (usage.items, usage.deduplicated, usage.requests) == (4, 3, 1)
    assert usage.modalities == {"text": 2, "image": 2}  # only what was sent is billed

    # the same through the async path; a query and a document of one text differ
    emulator.reset_stats()
    again = asyncio.run(embedder.aembed(["a cat", "a cat", "a bird"]))
    assert emulator.stats.items == 2 and again[0] == again[1] == vectors[0]
    emulator.reset_stats()
    assert embedder.embed(["a cat"], role="query")[0] != vectors[0]
    assert emulator.stats.items == 1


def test_copies_across_batches_and_runs_reuse_the_stored_vector_without_a_cache(
    emulator: Emulator, embedder: Embedder, tmp_path: Path
) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    red = samples.make_png(folder / "a.png", "a red circle", color=(255, 0, 0))
    for i in range(5):
        (folder / f"n{i}.txt").write_text(f"note {i}")
    shutil.copy(red, folder / "z.png")  # two rounds after a.png (two items per round)
    col = collection(tmp_path, embedder)
    assert embedder.cache is None

    report = index_paths([folder], col, embedder, chunk_items=2)
    assert emulator.stats.items == 6  # z.png took a.png's stored vector
    assert (report.files_indexed, report.items_written, report.items_reused) == (7, 7, 1)
    records = dump(col)
    sources = {m["source"]: v for v, m in records.values()}
    assert sorted(sources) == sorted(str(p) for p in folder.iterdir())
    np.testing.assert_allclose(sources[str(folder / "z.png")], sources[str(red)], atol=1e-7)

    # a new copy on the next run: no call, its own record; the rest unchanged
    shutil.copy(red, folder / "m.png")
    emulator.reset_stats()
    report = index_paths([folder], col, embedder, chunk_items=2)
    assert emulator.stats.requests == 0
    assert (report.files_indexed, report.files_unchanged, report.items_reused) == (1, 7, 1)
    assert len(dump(col)) == 8

    # editing one copy changes only that path's record
    samples.make_png(folder / "a.png", "a green triangle", color=(0, 255, 0), shape="triangle")
    emulator.reset_stats()
    report = index_paths([folder], col, embedder, chunk_items=2)
    assert emulator.stats.items == 1 and report.removed_stale == 1
    after = {m["source"]: v for v, m in dump(col).values()}
    assert len(after) == 8
    np.testing.assert_allclose(after[str(folder / "m.png")], sources[str(red)], atol=1e-7)
    assert not np.allclose(after[str(red)], sources[str(red)])


def test_names_differing_only_by_an_undecodable_byte_or_its_escape_are_kept_apart(
    emulator: Emulator, embedder: Embedder, tmp_path: Path
) -> None:
    folder = tmp_path / "names"
    folder.mkdir()
    raw = os.path.join(os.fsencode(folder), b"a\xffb.txt")
    with open(raw, "wb") as f:
        f.write(b"a name with a raw byte")
    # a valid name spelling the escape literally: same text, not escaped, another file
    literal = folder / "a\\xffb.txt"
    literal.write_text("a name with a backslash")
    col = collection(tmp_path, embedder)

    report = index_paths([folder], col, embedder)
    assert report.files_indexed == 2 and not report.skipped
    from gemb2.ingest.loading import load_file, source_name, source_path
    from gemb2.ingest.pieces import PIECES, load_piece

    metas = sorted((m for _, m in dump(col).values()), key=lambda m: m.get("source_escaped", 0))
    # both record the same text; only source_escaped tells them apart
    assert [m["source"] for m in metas] == [str(literal), str(literal)]
    assert "source_escaped" not in metas[0] and metas[1]["source_escaped"] is True
    assert os.fsencode(source_path(metas[0])) == os.fsencode(literal)
    assert os.fsencode(source_path(metas[1])) == raw
    assert source_name(os.fsdecode(raw)) == (str(literal), True)
    odd = folder / "c\\d\udcfe"  # a backslash and the byte 0xfe
    assert source_name(odd) == (f"{folder}/c\\\\d\\xfe", True)
    assert source_path({"source": source_name(odd)[0], "source_escaped": True}) == odd

    emulator.reset_stats()
    report = index_paths([folder], col, embedder)
    assert emulator.stats.requests == 0 and report.files_unchanged == 2

    # a piece is found again from its stored (escaped) metadata
    (item,) = load_file(os.fsdecode(raw))
    PIECES.clear()
    assert load_piece(item.metadata).text == "a name with a raw byte"

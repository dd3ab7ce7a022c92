"""Writes to a Chroma server keep to Chroma Cloud's published quotas (records per write,
document and URI bytes, writes in flight per collection), through a recording proxy in
front of a real ``chroma run``; an embedded store is written as before.

Chroma Cloud's numbers: https://docs.trychroma.com/cloud/quotas-limits (300 records per
write, 16,384 document bytes, 256 URI bytes, 10 concurrent writes per collection)."""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import chromadb
import numpy as np
import pytest
from chroma_proxy import RecordingProxy
from chromadb.config import Settings

from gemb2 import Embedder, InputError, VectorCache
from gemb2.cli.main import main
from gemb2.errors import StoreError
from gemb2.ingest.indexer import IndexReport, index_paths
from gemb2.ingest.loading import load_file
from gemb2.ingest.pieces import load_piece
from gemb2.stores.chroma import GeminiEmbeddingFunction, open_collection
from gemb2.stores.limits import ChromaWriteLimits
from gemb2.stores.writer import ChromaWriter, write_records
from gemb2.testing.emulator import Emulator

DIMS = 256
MAX_RECORDS, MAX_DOC, MAX_URI, MAX_WRITES = 300, 16_384, 256, 10
WORDS = [
    "volcano",
    "glacier",
    "honeybee",
    "piano",
    "ocean",
    "desert",
    "forest",
    "comet",
    "river",
    "canyon",
]
ACCENTED = ["café", "naïve", "Ünïcödé", "✓", "日本語", "façade", "€", "🙂"]
JOB = re.compile(r"submitted (batches/[0-9a-z]+)")


def client_for(url: str) -> Any:
    u = urlparse(url)
    return chromadb.HttpClient(
        host=u.hostname or "127.0.0.1",
        port=u.port or 8000,
        settings=Settings(anonymized_telemetry=False),
    )


def short_texts(folder: Path, n: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        p = folder / f"note_{i:04d}.txt"
        p.write_text(f"note {i}: the {WORDS[i % 10]} near the {WORDS[(i * 7) % 10]}\n")
        paths.append(p)
    return paths


def long_text(path: Path, seed: int, sentences: int = 3000) -> Path:
    """About 30 KB per 8,192-token piece, so every piece's text is over 16 KiB; multi-byte
    characters throughout, so a cut can fall inside one."""
    rng = random.Random(seed)
    out = []
    for i in range(sentences):
        words = [rng.choice(WORDS + ACCENTED) for _ in range(12)]
        out.append(" ".join(words).capitalize() + ". ")
        if i % 8 == 7:
            out.append("\n\n")
    path.write_text("".join(out), encoding="utf-8")
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def proxy(chroma_server: str) -> Iterator[RecordingProxy]:
    with RecordingProxy(chroma_server) as p:
        yield p


def assert_within_cloud_limits(proxy: RecordingProxy) -> None:
    assert proxy.writes, "nothing was written"
    assert max(w.records for w in proxy.writes) <= MAX_RECORDS
    assert max(w.max_document_bytes for w in proxy.writes) <= MAX_DOC
    assert max(w.max_uri_bytes for w in proxy.writes) <= MAX_URI
    assert proxy.max_in_flight <= MAX_WRITES


# --- gemb2 index on a server --------------------------------------------------------------


def test_gemb2_index_on_a_server_keeps_to_chroma_clouds_limits(
    capsys: pytest.CaptureFixture[str],
    emulator: Emulator,
    proxy: RecordingProxy,
    chroma_server: str,
    tmp_path: Path,
) -> None:
    corpus = tmp_path / "corpus"
    short_texts(corpus, 700)
    longs = [long_text(corpus / "long_a.txt", 1), long_text(corpus / "long_b.txt", 2)]
    pieces = {str(p): len(load_file(p)) for p in sorted(corpus.iterdir())}
    total = sum(pieces.values())
    assert total > 700 and pieces[str(longs[0])] >= 5

    code, out, err = run(
        capsys,
        "index",
        str(corpus),
        "--chroma-url",
        proxy.url,
        "--collection",
        "limits-cli",
        "--db",
        str(tmp_path / "db"),
        "--base-url",
        emulator.base_url,
        "--dimensions",
        str(DIMS),
        "-q",
    )
    assert code == 0, err
    assert f"indexed {len(pieces)} files ({total} items)" in out
    assert_within_cloud_limits(proxy)
    assert sum(w.records for w in proxy.writes) == total
    col = client_for(chroma_server).get_collection("limits-cli")
    assert col.count() == total

    got = col.get(
        where={"source": {"$in": [str(p) for p in longs]}},
        include=["metadatas", "documents", "embeddings"],
    )
    assert len(got["ids"]) == pieces[str(longs[0])] + pieces[str(longs[1])]
    metas = [dict(m) for m in got["metadatas"]]
    rebuilt = [load_piece(m) for m in metas]  # the full text, from the file and offsets
    with Embedder(base_url=emulator.base_url, dimensions=DIMS) as emb:
        full_vectors = emb.embed(rebuilt, role="document")
        cut_vectors = emb.embed(list(got["documents"]), role="document")
    for meta, doc, vec, piece, full_vec, cut_vec in zip(
        metas, got["documents"], got["embeddings"], rebuilt, full_vectors, cut_vectors, strict=True
    ):
        text = Path(meta["source"]).read_text(encoding="utf-8")
        full = text[meta["char_start"] : meta["char_end"]]
        assert piece.text == full and len(full.encode()) > MAX_DOC
        assert meta["document_truncated"] is True
        stored = doc.encode("utf-8")
        assert full.encode().startswith(stored) and MAX_DOC - 4 < len(stored) <= MAX_DOC
        np.testing.assert_allclose(vec, full_vec, atol=1e-5)  # the vector of the full text
        assert not np.allclose(vec, cut_vec, atol=1e-3)

    short = col.get(
        where={"source": str(corpus / "note_0007.txt")}, include=["metadatas", "documents", "uris"]
    )
    assert short["documents"] == [(corpus / "note_0007.txt").read_text()]
    assert "document_truncated" not in short["metadatas"][0]
    assert short["uris"] == [str(corpus / "note_0007.txt")]


def test_gemb2_index_write_limits_are_settable_on_the_command_line(
    capsys: pytest.CaptureFixture[str],
    emulator: Emulator,
    proxy: RecordingProxy,
    chroma_server: str,
    tmp_path: Path,
) -> None:
    corpus = tmp_path / "corpus"
    short_texts(corpus, 150)
    long = long_text(corpus / "long.txt", 3, sentences=300)
    assert len(long.read_bytes()) > MAX_DOC and len(load_file(long)) == 1
    # the bound of 2 is never reached by the proxy's hold of 3: it shows as the maximum
    proxy.reset(hold_writes=3)
    proxy.hold_seconds = 5.0
    code, out, err = run(
        capsys,
        "index",
        str(corpus),
        "--chroma-url",
        proxy.url,
        "--collection",
        "limits-flags",
        "--db",
        str(tmp_path / "db"),
        "--base-url",
        emulator.base_url,
        "--dimensions",
        str(DIMS),
        "-q",
        "--chroma-max-batch",
        "40",
        "--chroma-max-writes",
        "2",
        "--chroma-max-document-bytes",
        "0",
    )
    assert code == 0, err
    assert "indexed 151 files (151 items)" in out
    assert max(w.records for w in proxy.writes) == 40
    assert sum(w.records for w in proxy.writes) == 151
    assert proxy.max_in_flight == 2
    col = client_for(chroma_server).get_collection("limits-flags")
    got = col.get(where={"source": str(long)}, include=["documents", "metadatas"])
    assert got["documents"] == [long.read_text()]  # no document limit: stored whole
    assert "document_truncated" not in got["metadatas"][0]

    code, _out, err = run(
        capsys,
        "index",
        str(corpus),
        "--chroma-url",
        proxy.url,
        "--db",
        str(tmp_path / "db"),
        "--base-url",
        emulator.base_url,
        "--chroma-max-writes",
        "0",
    )
    assert code == 2
    assert err.strip() == "gemb2 index: error: --chroma-max-writes must be at least 1, got 0"


# --- many records at once: from the vector cache, and Batch Mode's collect ---------------


@pytest.fixture(scope="module")
def cached_corpus(
    emulator_session: Emulator, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Path]:
    """800 texts whose vectors are all in a vector cache (from an embedded index run)."""
    root = tmp_path_factory.mktemp("cached")
    short_texts(root / "corpus", 800)
    cache = root / "vector-cache.sqlite"
    client = chromadb.PersistentClient(
        path=str(root / "db"), settings=Settings(anonymized_telemetry=False)
    )
    ef = GeminiEmbeddingFunction(base_url=emulator_session.base_url, dimensions=DIMS)
    with Embedder(base_url=emulator_session.base_url, dimensions=DIMS) as emb:
        emb.cache = VectorCache(cache)
        report = index_paths([root / "corpus"], open_collection(client, "warm", ef), emb)
    assert report.items_written == 800
    return root / "corpus", cache


def _cached_embedder(emulator: Emulator, cache: Path) -> Embedder:
    emb = Embedder(base_url=emulator.base_url, dimensions=DIMS)
    emb.cache = VectorCache(cache)
    return emb


def test_vectors_from_the_cache_are_written_300_at_a_time_in_parallel(
    emulator: Emulator,
    proxy: RecordingProxy,
    cached_corpus: tuple[Path, Path],
) -> None:
    corpus, cache = cached_corpus
    ef = GeminiEmbeddingFunction(base_url=emulator.base_url, dimensions=DIMS)
    col = open_collection(client_for(proxy.url), "limits-cached", ef)
    proxy.reset(hold_writes=3)  # the first writes wait until three are in flight together
    with _cached_embedder(emulator, cache) as emb:
        report = index_paths([corpus], col, emb, chunk_items=1000)
    assert emulator.stats.requests == 0  # every vector came from the cache
    assert sorted(w.records for w in proxy.writes) == [200, 300, 300]
    assert proxy.max_in_flight == 3
    assert_within_cloud_limits(proxy)
    assert report.items_written == 800 == col.count()


def test_a_refused_write_among_parallel_ones_reports_the_true_stored_count(
    emulator: Emulator,
    proxy: RecordingProxy,
    chroma_server: str,
    cached_corpus: tuple[Path, Path],
) -> None:
    corpus, cache = cached_corpus
    ef = GeminiEmbeddingFunction(base_url=emulator.base_url, dimensions=DIMS)
    col = open_collection(client_for(proxy.url), "limits-refused", ef)
    # all three writes in flight together, the second to arrive refused: two are stored
    proxy.reset(hold_writes=3, refuse={2})
    report = IndexReport()
    with _cached_embedder(emulator, cache) as emb, pytest.raises(StoreError) as caught:
        index_paths([corpus], col, emb, chunk_items=1000, report=report)
    assert sorted(w.status for w in proxy.writes) == [200, 200, 500]
    stored = client_for(chroma_server).get_collection("limits-refused").count()
    assert stored in (500, 600)  # the two writes acknowledged: 300 + 200 or 300 + 300
    assert report.items_written == stored
    assert f"{stored} items stored by this run before the failure" in str(caught.value)
    assert caught.value.report is report

    proxy.reset()
    with _cached_embedder(emulator, cache) as emb:
        again = index_paths([corpus], col, emb, chunk_items=1000)
    assert again.items_written == 800 - stored and again.files_unchanged == stored
    assert col.count() == 800


def test_batch_mode_collect_into_a_server_writes_at_most_300_records_at_a_time(
    capsys: pytest.CaptureFixture[str],
    emulator: Emulator,
    proxy: RecordingProxy,
    chroma_server: str,
    tmp_path: Path,
) -> None:
    emulator.configure(batch_delay=0.05)
    corpus = tmp_path / "corpus"
    short_texts(corpus, 700)
    db = tmp_path / "db"
    common = ("--db", str(db), "--base-url", emulator.base_url)
    code, out, err = run(
        capsys,
        "index",
        str(corpus),
        "--batch-mode",
        "--chroma-url",
        proxy.url,
        "--collection",
        "limits-batch",
        "--dimensions",
        str(DIMS),
        "-q",
        *common,
    )
    assert code == 0, err
    (name,) = JOB.findall(out)
    proxy.reset(hold_writes=3)
    code, out, err = run(
        capsys, "jobs", "collect", name, "--wait", "--poll-interval", "0.1", *common
    )
    assert code == 0, err
    assert f"collected {name}: stored 700 items into 'limits-batch'" in out
    assert sorted(w.records for w in proxy.writes) == [100, 300, 300]
    assert proxy.max_in_flight == 3
    assert_within_cloud_limits(proxy)
    assert client_for(chroma_server).get_collection("limits-batch").count() == 700


# --- URIs and documents one by one; the embedded store ------------------------------------


def test_uris_and_documents_over_the_limits_on_a_server(
    emulator: Emulator, proxy: RecordingProxy, tmp_path: Path
) -> None:
    deep = tmp_path.joinpath(*(["folder-" + "d" * 53] * 4))
    deep.mkdir(parents=True)
    note = deep / "note.txt"
    note.write_text("a note kept in a deeply nested folder\n")
    assert len(str(note).encode()) > MAX_URI
    ef = GeminiEmbeddingFunction(base_url=emulator.base_url, dimensions=DIMS)
    col = open_collection(client_for(proxy.url), "limits-uris", ef)
    with Embedder(base_url=emulator.base_url, dimensions=DIMS) as emb:
        index_paths([note], col, emb)
        vector = emb.embed(["a loose record"])[0]
    assert_within_cloud_limits(proxy)
    got = col.get(include=["uris", "metadatas", "documents"])
    # stored without its uri: the path is kept whole in the `source` metadata
    assert got["uris"] == [None] and got["metadatas"][0]["source"] == str(note)
    assert got["documents"] == ["a note kept in a deeply nested folder\n"]

    # what cannot be kept whole is refused before any write, naming the record and limit
    proxy.reset()
    long_uri = "https://media.example.invalid/" + "a" * 300
    with pytest.raises(InputError, match=r"uri of record 'loose' is 330 bytes.*256 bytes per URI"):
        write_records(col, ["ok", "loose"], [vector] * 2, uris=["u", long_uri])
    with pytest.raises(
        InputError, match=r"document of record 'loose' is 20,000 bytes.*16,384 bytes per document"
    ):
        write_records(col, ["loose"], [vector], documents=["x" * 20_000])
    assert proxy.writes == []

    # a piece's document is cut on a character boundary and marked
    source_meta = {"source": str(note), "file_hash": "0" * 64, "modality": "text"}
    stored = write_records(
        col, ["piece"], [vector], documents=["ab" + "✓" * 6000], metadatas=[source_meta]
    )
    assert stored == 1
    got = col.get(ids=["piece"], include=["documents", "metadatas"])
    assert got["documents"] == ["ab" + "✓" * 5460]  # 16,382 bytes: the next ✓ would not fit
    assert got["metadatas"] == [{**source_meta, "document_truncated": True}]
    assert [w.max_document_bytes for w in proxy.writes] == [16_382]


def test_an_embedded_store_is_written_as_before(emulator: Emulator, tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    short_texts(corpus, 5)
    long = long_text(corpus / "long.txt", 4)
    deep = tmp_path.joinpath(*(["folder-" + "d" * 53] * 4))
    deep.mkdir(parents=True)
    (deep / "deep.txt").write_text("deep\n")
    client = chromadb.PersistentClient(
        path=str(tmp_path / "db"), settings=Settings(anonymized_telemetry=False)
    )
    ef = GeminiEmbeddingFunction(base_url=emulator.base_url, dimensions=DIMS)
    col = open_collection(client, "embedded", ef)
    limits = ChromaWriteLimits.for_collection(col)
    assert limits == ChromaWriteLimits.embedded()
    assert (limits.max_document_bytes, limits.max_uri_bytes, limits.max_concurrent_writes) == (
        None,
        None,
        1,
    )
    assert ChromaWriter(col).records_per_write == client.get_max_batch_size()
    with Embedder(base_url=emulator.base_url, dimensions=DIMS) as emb:
        report = index_paths([corpus, deep], col, emb)
    got = col.get(include=["metadatas", "documents", "uris"])
    assert report.items_written == len(got["ids"]) == 6 + len(load_file(long))
    text = long.read_text()
    for meta, doc, uri in zip(got["metadatas"], got["documents"], got["uris"], strict=True):
        assert "document_truncated" not in meta
        assert uri == meta["source"]  # a 270-byte path is a uri here as ever
        if meta["source"] == str(long):
            assert doc == text[meta["char_start"] : meta["char_end"]]
            assert len(doc.encode()) > MAX_DOC  # whole


def test_write_limits_are_settable_from_python(
    emulator: Emulator, proxy: RecordingProxy, cached_corpus: tuple[Path, Path]
) -> None:
    corpus, cache = cached_corpus
    ef = GeminiEmbeddingFunction(base_url=emulator.base_url, dimensions=DIMS)
    col = open_collection(client_for(proxy.url), "limits-python", ef)
    limits = ChromaWriteLimits(max_records_per_write=120, max_concurrent_writes=1)
    proxy.reset(hold_writes=2)  # a second write in flight would be let through at once
    proxy.hold_seconds = 1.0
    with _cached_embedder(emulator, cache) as emb:
        report = index_paths([corpus], col, emb, chunk_items=1000, write_limits=limits)
    assert [w.records for w in proxy.writes] == [120] * 6 + [80]
    assert proxy.max_in_flight == 1
    assert report.items_written == 800 == col.count()


# --- reads -----------------------------------------------------------------------------


def test_reads_from_a_server_are_paged_within_the_read_limit(
    capsys: pytest.CaptureFixture[str],
    emulator: Emulator,
    proxy: RecordingProxy,
    tmp_path: Path,
) -> None:
    """Chroma Cloud answers at most 300 results a get (the default on a server); with
    ``--chroma-max-read 40`` the resume check of a re-index and a migration's read of every
    record arrive at the server as gets of at most 40, and miss nothing."""
    corpus = tmp_path / "corpus"
    short_texts(corpus, 130)
    server = ("--chroma-url", proxy.url, "--db", str(tmp_path / "db"), "--chroma-max-read", "40")
    common = (*server, "--base-url", emulator.base_url, "--dimensions", str(DIMS), "-q")
    code, out, err = run(capsys, "index", str(corpus), "--collection", "reads-a", *common)
    assert code == 0, err
    proxy.reset()
    emulator.reset_stats()
    code, out, err = run(capsys, "index", str(corpus), "--collection", "reads-a", *common)
    assert code == 0, err
    assert "130 unchanged" in out and emulator.stats.requests == 0
    resumed = list(proxy.reads)
    assert sum(r.results for r in resumed) >= 130  # every stored record was seen
    proxy.reset()
    code, out, err = run(
        capsys, "migrate", "--from-collection", "reads-a", "--to-collection", "reads-b", *common
    )
    assert code == 0, err
    assert client_for(proxy.url).get_collection("reads-b").count() == 130
    for read in (*resumed, *proxy.reads):
        assert read.results <= 40, read
        assert read.ids <= 40 and (read.ids or (read.limit or 10**9) <= 40), read
    assert sum(r.results for r in proxy.reads) >= 130  # the migration read all of them
    col = client_for(proxy.url).get_collection("reads-a")
    assert ChromaWriteLimits.for_collection(col).max_results_per_read == 300


def test_a_get_of_many_ids_is_sent_in_chunks(proxy: RecordingProxy) -> None:
    from gemb2.stores.reads import paged_get

    col = client_for(proxy.url).get_or_create_collection("reads-ids")
    ids = [f"r{i:03d}" for i in range(130)]
    col.upsert(ids=ids, embeddings=[[float(i), 1.0] for i in range(130)])
    proxy.reset()
    got = paged_get(
        col, ChromaWriteLimits(max_results_per_read=40), ids=ids, include=["embeddings"]
    )
    assert [r.ids for r in proxy.reads] == [40, 40, 40, 10]
    assert sorted(got["ids"]) == ids
    vectors = dict(zip(got["ids"], got["embeddings"], strict=True))
    assert [float(vectors["r129"][0]), float(vectors["r000"][0])] == [129.0, 0.0]
    proxy.reset()
    assert paged_get(col, include=[])["ids"] == col.get(include=[])["ids"]  # 300 by default
    assert [r.limit for r in proxy.reads] == [300, None]

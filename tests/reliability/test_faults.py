"""Faults on the wire: 30% of requests answered 429 (with a retry delay), 500, 503, too slowly
(past the client's timeout) or not at all (connection dropped). Every item still ends up
stored exactly once with the vector a fault-free run stores; the job reports its retries;
when faults outlast the retry budget the job stops with a clear message, keeps what was
stored, and the next run resumes where it stopped."""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import chromadb
import pytest
from rel_helpers import (
    DIMS,
    FAST_RETRIES,
    FAULT_KINDS,
    assert_same_vectors,
    dump,
    inject_faults,
    make_corpus,
    make_media,
    persistent,
    reported_usage,
    run_cli,
    text_of,
)

from gemb2 import Embedder, EmbedSettings
from gemb2.testing.emulator import Emulator


def _pieces(records: dict[str, tuple[list[float], dict[str, Any]]]) -> Counter[tuple[str, int]]:
    return Counter((str(m["source"]), int(m["piece"])) for _, m in records.values())


def test_cli_indexes_2000_items_exactly_once_through_30_percent_faults(
    capsys: pytest.CaptureFixture[str], quiet_emulator: Emulator, tmp_path: Path
) -> None:
    emu = quiet_emulator
    files = make_corpus(tmp_path / "corpus", 1994)  # + 6 media = 2,000 items
    assert len(files) == 2000
    base = ["--base-url", emu.base_url, "--dimensions", str(DIMS), "-q"]

    # the reference: the same job with no faults
    code, out, err = run_cli(
        capsys, "index", str(tmp_path / "corpus"), "--db", str(tmp_path / "clean"), *base
    )
    assert code == 0, err
    assert "indexed 2000 files (2000 items)" in out
    clean = dump(persistent(tmp_path / "clean").get_collection("gemb2"))

    emu.reset_stats()
    inject_faults(emu)
    code, out, err = run_cli(
        capsys,
        "index",
        str(tmp_path / "corpus"),
        "--db",
        str(tmp_path / "faulty"),
        "--timeout",
        "1",
        *base,
    )
    assert code == 0, err
    assert "indexed 2000 files (2000 items)" in out and "0 skipped" in out
    faults = dict(emu.stats.faults)
    assert set(faults) == set(FAULT_KINDS), faults  # every kind of fault was met
    requests, retries, cached = reported_usage(out)
    assert cached == 0
    assert requests == emu.stats.requests  # every attempt is counted and reported
    assert retries >= sum(faults.values()) >= 10  # each fault cost one retry, none was lost

    faulty = dump(persistent(tmp_path / "faulty").get_collection("gemb2"))
    assert len(faulty) == 2000
    pieces = _pieces(faulty)
    assert max(pieces.values()) == 1  # no item stored twice
    assert {s for s, _ in pieces} == {str(f) for f in files}  # none missing
    assert_same_vectors(
        {k: v for k, (v, _) in faulty.items()}, {k: v for k, (v, _) in clean.items()}
    )
    assert Counter(m["modality"] for _, m in faulty.values()) == {
        "text": 1994,
        "image": 2,
        "audio": 2,
        "video": 1,
        "pdf": 1,
    }


def test_cli_stops_clearly_when_faults_outlast_retries_and_the_next_run_resumes(
    capsys: pytest.CaptureFixture[str],
    quiet_emulator: Emulator,
    tmp_path: Path,
    chroma_server: str,
) -> None:
    emu = quiet_emulator
    files = make_corpus(tmp_path / "corpus", 594)  # 600 items
    name = "reliability-exhausted"
    url = urlparse(chroma_server)
    client = chromadb.HttpClient(host=url.hostname or "127.0.0.1", port=url.port or 8000)
    argv = [
        "index",
        str(tmp_path / "corpus"),
        "--chroma-url",
        chroma_server,
        "--collection",
        name,
        "--db",
        str(tmp_path / "db"),  # the vector cache lives here
        "--base-url",
        emu.base_url,
        "--dimensions",
        str(DIMS),
        "--timeout",
        "2",
        "--max-retries",
        "2",
        "-q",
    ]
    # the service fails every request once 200 items have been answered
    stop = threading.Event()

    def outage() -> None:
        while not stop.is_set():
            if emu.stats.items >= 200:
                emu.configure(fault_rate=1.0, faults=("503",))
                return
            time.sleep(0.002)

    watcher = threading.Thread(target=outage, daemon=True)
    watcher.start()
    try:
        code, out, err = run_cli(capsys, *argv)
    finally:
        stop.set()
        watcher.join()
    assert code == 2, out
    assert "gave up after 3 attempts" in err and "503 UNAVAILABLE" in err
    assert "stored before the failure" in err and "run the same command again to resume" in err
    assert "Traceback" not in err

    collection = client.get_collection(name)
    stored = collection.count()
    answered = emu.stats.items
    assert 200 <= stored < 600
    assert stored == answered  # every vector the service returned was kept, and only those

    emu.configure(fault_rate=0.0)
    emu.reset_stats()
    code, out, err = run_cli(capsys, *argv)
    assert code == 0, err
    assert emu.stats.items == 600 - stored  # finished items cost no new call
    assert f"indexed {600 - stored} files" in out and f"{stored} unchanged" in out
    records = dump(collection)
    assert len(records) == 600
    pieces = _pieces(records)
    assert max(pieces.values()) == 1 and {s for s, _ in pieces} == {str(f) for f in files}
    client.delete_collection(name)


# -- each framework wrapper under the same faults ----------------------------------------


def _texts_and_media(tmp_path: Path) -> tuple[list[str], list[Path]]:
    return [text_of(i) for i in range(294)], make_media(tmp_path / "media")


def _settings(emu: Emulator) -> dict[str, Any]:
    return {"base_url": emu.base_url, "dimensions": DIMS, "batch_size": 10, **FAST_RETRIES}


def _langchain(emu: Emulator, tmp_path: Path, run: str) -> tuple[dict[str, list[float]], int]:
    from langchain_chroma import Chroma

    from langchain_gemb2 import GeminiEmbeddings

    texts, media = _texts_and_media(tmp_path)
    emb = GeminiEmbeddings(**_settings(emu))
    client = persistent(tmp_path / f"lc-{run}")
    store = Chroma(collection_name="lc-col", embedding_function=emb, client=client)
    store.add_texts(texts, ids=[f"t{i}" for i in range(len(texts))])
    store.add_images([str(p) for p in media], ids=[p.name for p in media])
    got = dump(client.get_collection("lc-col"))
    return {k: v for k, (v, _) in got.items()}, emb.usage.retries


def _llamaindex(emu: Emulator, tmp_path: Path, run: str) -> tuple[dict[str, list[float]], int]:
    """The async path: IngestionPipeline.arun through the SDK's async client."""
    import asyncio

    from llama_index.core.ingestion import IngestionPipeline
    from llama_index.vector_stores.chroma import ChromaVectorStore

    from llamaindex_gemb2 import (
        GeminiMediaNodeParser,
        GeminiMediaReader,
        GeminiMultiModalEmbedding,
    )

    folder = tmp_path / "li-corpus"
    if not folder.exists():
        make_corpus(folder, 294)
    model = GeminiMultiModalEmbedding(settings=EmbedSettings(**_settings(emu)))
    client = persistent(tmp_path / f"li-{run}")
    collection = client.get_or_create_collection("li-col")
    pipeline = IngestionPipeline(
        transformations=[GeminiMediaNodeParser(), model],
        vector_store=ChromaVectorStore(chroma_collection=collection),
    )
    asyncio.run(pipeline.arun(documents=GeminiMediaReader().load_data(folder)))
    got = dump(collection)
    # node ids are random: key by the file and piece each node came from
    out = {f"{Path(m['source']).name}#{m['piece']}": v for v, m in got.values()}
    assert len(out) == len(got)
    return out, model.usage.retries


def _haystack(
    emu: Emulator, tmp_path: Path, run: str, chroma_server: str
) -> tuple[dict[str, list[float]], int]:
    from haystack import Document
    from haystack_integrations.components.embedders.gemb2 import GeminiDocumentEmbedder
    from haystack_integrations.document_stores.chroma import ChromaDocumentStore

    texts, media = _texts_and_media(tmp_path)
    docs = [Document(id=f"t{i}", content=t) for i, t in enumerate(texts)]
    docs += [Document(id=p.name, content="", meta={"file_path": p.name}) for p in media]
    s = _settings(emu)
    embedder = GeminiDocumentEmbedder(
        api_base_url=s.pop("base_url"),
        dimensions=s.pop("dimensions"),
        batch_size=s.pop("batch_size"),
        timeout=s.pop("timeout"),
        max_retries=s.pop("max_retries"),
        settings=s,
        root_path=str(media[0].parent),
        progress_bar=False,
    )
    embedded = embedder.run(docs)["documents"]
    retries = embedder.embedder.usage.retries
    if run == "clean":  # the reference (chroma-haystack writes one document per call: slow)
        return {d.id: list(d.embedding or []) for d in embedded}, retries
    url = urlparse(chroma_server)
    name = f"hs-{run}-{tmp_path.name}"[:60]
    store = ChromaDocumentStore(
        collection_name=name, host=url.hostname, port=url.port, distance_function="cosine"
    )
    assert store.write_documents(embedded) == 300
    client = chromadb.HttpClient(host=url.hostname or "127.0.0.1", port=url.port or 8000)
    got = dump(client.get_collection(name))
    client.delete_collection(name)
    return {k: v for k, (v, _) in got.items()}, retries


def _chroma_ef(
    emu: Emulator, tmp_path: Path, run: str, chroma_server: str
) -> tuple[dict[str, list[float]], int]:
    from gemb2.stores.chroma import GeminiEmbeddingFunction, open_collection

    texts, media = _texts_and_media(tmp_path)
    s = _settings(emu)
    ef = GeminiEmbeddingFunction(base_url=s.pop("base_url"), dimensions=s.pop("dimensions"), **s)
    url = urlparse(chroma_server)
    client = chromadb.HttpClient(host=url.hostname or "127.0.0.1", port=url.port or 8000)
    name = f"ef-{run}-{tmp_path.name}"[:60]
    collection = open_collection(client, name, ef)
    collection.add(ids=[f"t{i}" for i in range(len(texts))], documents=texts)
    collection.add(ids=[p.name for p in media], uris=[str(p) for p in media])
    got = dump(collection)
    client.delete_collection(name)
    return {k: v for k, (v, _) in got.items()}, ef.embedder.usage.retries


@pytest.mark.parametrize("wrapper", ["langchain", "llamaindex", "haystack", "chroma"])
def test_each_wrapper_stores_300_items_once_with_the_right_vectors_through_faults(
    wrapper: str, quiet_emulator: Emulator, tmp_path: Path, chroma_server: str
) -> None:
    emu = quiet_emulator

    def index(run: str) -> tuple[dict[str, list[float]], int]:
        if wrapper == "langchain":
            return _langchain(emu, tmp_path, run)
        if wrapper == "llamaindex":
            return _llamaindex(emu, tmp_path, run)
        if wrapper == "haystack":
            return _haystack(emu, tmp_path, run, chroma_server)
        return _chroma_ef(emu, tmp_path, run, chroma_server)

    clean, clean_retries = index("clean")
    assert len(clean) == 300 and clean_retries == 0
    assert emu.stats.items == 300  # 294 texts and 6 media, each sent once

    emu.reset_stats()
    inject_faults(emu)
    faulty, retries = index("faulty")
    faults = sum(emu.stats.faults.values())
    assert len(faulty) == 300
    assert faults >= 5 and len(emu.stats.faults) >= 3, emu.stats.faults
    assert retries >= faults  # every fault was retried by the core, not by the wrapper
    assert_same_vectors(faulty, clean)


async def test_async_embedding_survives_every_fault_kind(
    quiet_emulator: Emulator, tmp_path: Path
) -> None:
    """The async client's failures (aiohttp's dropped connections and timeouts) are
    classified and retried like the sync client's."""
    emu = quiet_emulator
    media = make_media(tmp_path / "media")
    inputs: list[Any] = [text_of(i) for i in range(194)] + media
    embedder = Embedder(**_settings(emu))
    want = embedder.embed(inputs)
    emu.reset_stats()
    inject_faults(emu)
    got = await embedder.aembed(inputs)
    await embedder.aclose()
    assert set(emu.stats.faults) == set(FAULT_KINDS), emu.stats.faults
    assert embedder.usage.retries >= sum(emu.stats.faults.values())
    assert_same_vectors(dict(enumerate(got)), dict(enumerate(want)))  # type: ignore[arg-type]

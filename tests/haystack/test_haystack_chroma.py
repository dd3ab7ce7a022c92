"""Indexing and query pipelines with chroma-haystack's ChromaDocumentStore: persistent in a
temp dir, a real ``chroma run`` server for the async path, and a saved pipeline loaded in a
fresh process with Haystack's default deserialisation allowlist."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from urllib.parse import urlparse

import pytest
from haystack import Document, Pipeline
from haystack.components.writers import DocumentWriter
from haystack.document_stores.types import DuplicatePolicy
from haystack_integrations.components.embedders.gemb2 import (
    GeminiDocumentEmbedder,
    GeminiMediaQueryEmbedder,
    GeminiTextEmbedder,
)
from haystack_integrations.components.retrievers.chroma import ChromaEmbeddingRetriever
from haystack_integrations.document_stores.chroma import ChromaDocumentStore

from gemb2.testing.emulator import Emulator

DIM = 768
SECRET = "AIzaSy-HAYSTACK-PIPELINE-SECRET-42"


def corpus() -> list[Document]:
    """Text and media documents; media are referenced by path under root_path, and carry
    content so chroma-haystack stores them (it skips documents whose content is None)."""
    media = [
        ("red_circle.png", {}),
        ("blue_square.png", {}),
        ("yellow_star.jpg", {}),
        ("piano.wav", {}),
        ("waves.mp4", {}),
        ("three_pages.pdf", {"page_number": 1}),
        ("three_pages.pdf", {"page_number": 2}),
        ("three_pages.pdf", {"page_number": 3}),
    ]
    docs = [
        Document(content="", meta={"file_path": name, "kind": "media", **extra})
        for name, extra in media
    ]
    docs += [
        Document(content="The stock market closed higher today.", meta={"kind": "text"}),
        Document(content="A recipe for lemon cake with sugar.", meta={"kind": "text"}),
    ]
    return docs


QUERIES = [
    ("a red circle", ("red_circle.png", None)),
    ("ocean waves at a beach", ("waves.mp4", None)),
    ("a piano playing a single note", ("piano.wav", None)),
    ("honeybees make honey", ("three_pages.pdf", 2)),
    ("lemon cake recipe", (None, None)),
]


def hit(doc: Document) -> tuple[str | None, int | None]:
    return doc.meta.get("file_path"), doc.meta.get("page_number")


def pipelines(
    store: ChromaDocumentStore, emulator: Emulator, root: Path
) -> tuple[Pipeline, Pipeline]:
    indexing = Pipeline()
    indexing.add_component(
        "embedder",
        GeminiDocumentEmbedder(
            api_base_url=emulator.base_url,
            dimensions=DIM,
            root_path=str(root),
            progress_bar=False,
            batch_size=4,
        ),
    )
    indexing.add_component("writer", DocumentWriter(store, policy=DuplicatePolicy.OVERWRITE))
    indexing.connect("embedder.documents", "writer.documents")
    query = Pipeline()
    query.add_component(
        "text_embedder", GeminiTextEmbedder(api_base_url=emulator.base_url, dimensions=DIM)
    )
    query.add_component("retriever", ChromaEmbeddingRetriever(store, top_k=3))
    query.connect("text_embedder.embedding", "retriever.query_embedding")
    return indexing, query


def test_persistent_store_text_query_ranks_media_first(
    emulator: Emulator, media_dir: Path, tmp_path: Path
) -> None:
    store = ChromaDocumentStore(
        collection_name="mixed", persist_path=str(tmp_path / "db"), distance_function="cosine"
    )
    indexing, query = pipelines(store, emulator, media_dir)
    result = indexing.run({"embedder": {"documents": corpus()}})
    assert result["writer"]["documents_written"] == 10
    assert store.count_documents() == 10
    assert emulator.stats.requests == 3  # 10 documents in batches of 4

    for text, expected in QUERIES:
        docs = query.run({"text_embedder": {"text": text}})["retriever"]["documents"]
        assert len(docs) == 3
        if expected == (None, None):
            assert docs[0].content == "A recipe for lemon cake with sugar."
        else:
            assert hit(docs[0]) == expected, (text, [hit(d) for d in docs])
        assert docs[0].score is not None and docs[0].score <= docs[1].score  # cosine distance

    # an image as the query finds the matching image, then the rest
    media_query = Pipeline()
    media_query.add_component(
        "media_embedder",
        GeminiMediaQueryEmbedder(
            api_base_url=emulator.base_url, dimensions=DIM, root_path=str(media_dir)
        ),
    )
    media_query.add_component("retriever", ChromaEmbeddingRetriever(store, top_k=2))
    media_query.connect("media_embedder.embedding", "retriever.query_embedding")
    docs = media_query.run({"media_embedder": {"source": "blue_square.png"}})["retriever"][
        "documents"
    ]
    assert hit(docs[0]) == ("blue_square.png", None)

    # vectors stored are the embedder's, in the store's one dimension
    stored = store.filter_documents({"field": "meta.kind", "operator": "==", "value": "media"})
    assert len(stored) == 8
    assert all(len(d.embedding or []) == DIM for d in stored)


async def test_async_pipelines_on_a_chroma_server(
    emulator: Emulator, media_dir: Path, chroma_server: str
) -> None:
    url = urlparse(chroma_server)
    host, port = url.hostname, url.port
    store = ChromaDocumentStore(
        collection_name="mixed_async", host=host, port=port, distance_function="cosine"
    )
    indexing, query = pipelines(store, emulator, media_dir)
    result = await indexing.run_async({"embedder": {"documents": corpus()}})
    assert result["writer"]["documents_written"] == 10
    assert await store.count_documents_async() == 10
    for text, expected in QUERIES[:4]:
        out = await query.run_async({"text_embedder": {"text": text}})
        docs = out["retriever"]["documents"]
        assert hit(docs[0]) == expected, (text, [hit(d) for d in docs])
    await indexing.close_async()
    await query.close_async()


CHILD = textwrap.dedent(
    """
    import json, os, sys
    from haystack import Document, Pipeline
    from haystack.core.serialization_security import DESERIALIZATION_ALLOWLIST_ENV_VAR
    assert DESERIALIZATION_ALLOWLIST_ENV_VAR not in os.environ
    assert not any(m.startswith(("haystack_gemb2", "gemb2")) for m in sys.modules)
    indexing = Pipeline.loads(open(sys.argv[1]).read())
    query = Pipeline.loads(open(sys.argv[2]).read())
    docs = [Document(content="", meta={"file_path": n}) for n in json.loads(sys.argv[3])]
    written = indexing.run({"embedder": {"documents": docs}})["writer"]["documents_written"]
    found = query.run({"text_embedder": {"text": "a red circle"}})["retriever"]["documents"]
    embedder = query.get_component("text_embedder")
    print(json.dumps({
        "written": written,
        "top": found[0].meta["file_path"],
        "types": sorted(type(c).__module__ + "." + type(c).__name__ for _, c in query.walk()),
        "key_resolved": embedder.api_key.resolve_value() == os.environ["GOOGLE_API_KEY"],
    }))
    """
)


def test_dumps_loads_in_a_fresh_process(
    emulator: Emulator, media_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GOOGLE_API_KEY", SECRET)
    store = ChromaDocumentStore(
        collection_name="saved", persist_path=str(tmp_path / "db"), distance_function="cosine"
    )
    indexing, query = pipelines(store, emulator, media_dir)
    (tmp_path / "indexing.yaml").write_text(indexing.dumps())
    (tmp_path / "query.yaml").write_text(query.dumps())
    for name in ("indexing.yaml", "query.yaml"):
        text = (tmp_path / name).read_text()
        assert SECRET not in text
        assert "haystack_integrations.components.embedders.gemb2.Gemini" in text
        assert "haystack_gemb2" not in text
        assert "GOOGLE_API_KEY" in text
    env = {k: v for k, v in os.environ.items() if k != "HAYSTACK_DESERIALIZATION_ALLOWLIST"}
    env["HAYSTACK_TELEMETRY_ENABLED"] = "False"
    names = ["red_circle.png", "blue_square.png", "yellow_star.jpg"]
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            CHILD,
            str(tmp_path / "indexing.yaml"),
            str(tmp_path / "query.yaml"),
            json.dumps(names),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert SECRET not in proc.stdout + proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out == {
        "written": 3,
        "top": "red_circle.png",
        "types": [
            "haystack_integrations.components.embedders.gemb2.GeminiTextEmbedder",
            "haystack_integrations.components.retrievers.chroma.retriever.ChromaEmbeddingRetriever",
        ],
        "key_resolved": True,
    }
    assert emulator.stats.requests == 2  # the child's calls reached the emulator


def test_loading_a_pipeline_from_another_module_is_refused_by_default() -> None:
    """The allowlist is real: the same YAML naming the implementation module is refused, which
    is why the components are published under haystack_integrations."""
    from haystack.core.errors import DeserializationError

    yaml = Pipeline().dumps()
    yaml = yaml.replace(
        "components: {}",
        "components:\n  e:\n    type: haystack_gemb2.embedders.GeminiTextEmbedder\n"
        "    init_parameters: {}",
    )
    with pytest.raises(DeserializationError, match="allowlist"):
        Pipeline.loads(yaml)


def test_quickstart_example_runs_offline(tmp_path: Path) -> None:
    example = Path(__file__).parents[2] / "examples" / "haystack_quickstart.py"
    env = {k: v for k, v in os.environ.items() if k not in ("GOOGLE_API_KEY", "GEMINI_API_KEY")}
    proc = subprocess.run(
        [sys.executable, str(example), "honeybees make honey"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    assert "indexed 9 documents" in lines
    assert lines[lines.index("query: 'honeybees make honey'") + 1].startswith("1. nature.pdf p.2")
    assert lines[lines.index("similar to blue_square.png:") + 1] == "1. blue_square.png"

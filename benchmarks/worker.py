"""One benchmark job in its own process: ``python worker.py JOB.json`` prints one JSON line.

Runs under the project's venv (gemb2 jobs) or under ``benchmarks/.venv-anchors`` (the
frameworks' own Google integrations), so it imports nothing at module level that only
one of them has. Each job builds its client first, then times only the embedding call
(wall clock and this process's CPU), and checks what came back: one vector per input,
each of the requested dimension. Anchors reach the emulator through their own base-URL
option where they have one, else through the SDK's ``GOOGLE_GEMINI_BASE_URL``.
"""

from __future__ import annotations

import asyncio
import gc
import json
import mimetypes
import os
import resource
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any, cast

Job = dict[str, Any]
Result = dict[str, Any]

MODEL = "gemini-embedding-2"


# --------------------------------------------------------------------------- helpers


def versions(*names: str) -> dict[str, str]:
    out = {}
    for name in ("google-genai", *names):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def timed(fn: Callable[[], Any]) -> tuple[Any, float, float]:
    """(result, wall seconds, CPU seconds of this process, all threads)."""
    c0, t0 = time.process_time(), time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0, time.process_time() - c0


def check(vectors: Sequence[Any] | None, n: int, dims: int) -> tuple[str, str]:
    """Status and note for what an integration returned for ``n`` inputs."""
    if vectors is None:
        return "wrong", "no vectors returned"
    got = len(vectors)
    if got != n:
        return "wrong", f"returned {got} vectors for {n} inputs"
    bad = [i for i, v in enumerate(vectors) if v is None or len(v) != dims]
    if bad:
        return "wrong", f"{len(bad)} vectors missing or not {dims}-d (first: input {bad[0]})"
    return "ok", ""


def ingest(
    job: Job, make: Callable[[], Callable[[], Sequence[Any] | None]], n: int, packages: list[str]
) -> Result:
    """Build the client (untimed), run the embedding (timed), check the output."""
    run = make()
    # every row starts with its imports' garbage collected (as timeit does): otherwise the
    # first full collection of a fresh process (~0.1 s) lands in whichever row allocates
    gc.collect()
    vectors, wall, cpu = timed(run)
    status, note = check(vectors, n, job["dims"])
    return {
        "status": status,
        "note": note,
        "items": n,
        "vectors": len(vectors) if vectors is not None else 0,
        "wall_s": wall,
        "cpu_s": cpu,
        "versions": versions(*packages),
    }


def cannot(reason: str, packages: list[str]) -> Result:
    return {"status": "cannot", "note": reason, "versions": versions(*packages)}


def load_texts(job: Job) -> list[str]:
    texts: list[str] = json.loads(Path(job["texts"]).read_text())
    return texts


def media_paths(job: Job) -> list[Path]:
    return [Path(p) for p in job["media"]]


def warm(embedder: Any) -> None:
    """What the other integrations do in their constructors, gemb2 does on first use: build
    the SDK client and import its media readers (pypdf, PyAV, Pillow). Done before the clock
    starts, so every row is timed from the same point (about 0.3 s for the client and 0.5 s
    for the imports, once per process)."""
    import av  # noqa: F401
    import PIL.Image  # noqa: F401
    import pypdf  # noqa: F401

    import gemb2.inputs.probe  # noqa: F401
    from gemb2.transport.genai import genai_client

    _ = genai_client(embedder.transport)


def gemb2_settings(job: Job) -> dict[str, Any]:
    """The settings every gemb2 row shares: same endpoint, dimension, concurrency, quota."""
    out: dict[str, Any] = {"max_concurrency": job["concurrency"]}
    if job.get("rpm"):
        out["requests_per_minute"] = job["rpm"]
    return out


# --------------------------------------------------------------------------- gemb2 rows


def core_text(job: Job) -> Result:
    from gemb2 import Embedder

    texts = load_texts(job)

    def make() -> Callable[[], list[list[float]]]:
        emb = Embedder(base_url=job["base_url"], dimensions=job["dims"], **gemb2_settings(job))
        warm(emb)
        return lambda: emb.embed(texts)

    return ingest(job, make, len(texts), ["gemb2"])


def core_media(job: Job) -> Result:
    from gemb2 import Embedder

    paths = media_paths(job)

    def make() -> Callable[[], list[list[float]]]:
        emb = Embedder(base_url=job["base_url"], dimensions=job["dims"], **gemb2_settings(job))
        warm(emb)
        return lambda: emb.embed(paths)

    return ingest(job, make, len(paths), ["gemb2"])


def langchain_text(job: Job) -> Result:
    from langchain_gemb2 import GeminiEmbeddings

    texts = load_texts(job)

    def make() -> Callable[[], list[list[float]]]:
        emb = GeminiEmbeddings(
            base_url=job["base_url"], dimensions=job["dims"], **gemb2_settings(job)
        )
        warm(emb.embedder)
        return lambda: emb.embed_documents(texts)

    return ingest(job, make, len(texts), ["gemb2", "langchain-core"])


def langchain_media(job: Job) -> Result:
    from langchain_gemb2 import GeminiEmbeddings

    uris = [str(p) for p in media_paths(job)]

    def make() -> Callable[[], list[list[float]]]:
        emb = GeminiEmbeddings(
            base_url=job["base_url"], dimensions=job["dims"], **gemb2_settings(job)
        )
        warm(emb.embedder)
        return lambda: emb.embed_image(uris=uris)

    return ingest(job, make, len(uris), ["gemb2", "langchain-core"])


def _pipeline_vectors(nodes: Sequence[Any]) -> list[Any]:
    return [n.embedding for n in nodes]


def _llamaindex_run(
    embed_model: Any, nodes: list[Any], use_async: bool, parser: Any = None
) -> Callable[[], list[Any]]:
    """The framework's own ingestion path: ``IngestionPipeline(transformations=[..., embed])``."""
    from llama_index.core.ingestion import IngestionPipeline

    steps = [parser, embed_model] if parser is not None else [embed_model]
    pipeline = IngestionPipeline(transformations=steps)
    if use_async:
        return lambda: _pipeline_vectors(asyncio.run(pipeline.arun(documents=nodes)))
    return lambda: _pipeline_vectors(pipeline.run(documents=nodes))


def llamaindex_text(job: Job) -> Result:
    from llama_index.core.schema import Document

    from llamaindex_gemb2 import GeminiMultiModalEmbedding

    texts = load_texts(job)

    def make() -> Callable[[], list[Any]]:
        emb = GeminiMultiModalEmbedding(
            base_url=job["base_url"], dimensions=job["dims"], **gemb2_settings(job)
        )
        warm(emb.embedder)
        docs = [Document(text=t) for t in texts]
        return _llamaindex_run(emb, docs, job.get("async", False))

    return ingest(job, make, len(texts), ["gemb2", "llama-index-core"])


def llamaindex_media(job: Job) -> Result:
    from llamaindex_gemb2 import (
        GeminiMediaNodeParser,
        GeminiMediaReader,
        GeminiMultiModalEmbedding,
    )

    paths = media_paths(job)

    def make() -> Callable[[], list[Any]]:
        emb = GeminiMultiModalEmbedding(
            base_url=job["base_url"], dimensions=job["dims"], **gemb2_settings(job)
        )
        warm(emb.embedder)
        docs = GeminiMediaReader().load_data(paths)
        return _llamaindex_run(emb, docs, job.get("async", False), GeminiMediaNodeParser())

    return ingest(job, make, len(paths), ["gemb2", "llama-index-core"])


def haystack_text(job: Job) -> Result:
    from haystack import Document
    from haystack_integrations.components.embedders.gemb2 import GeminiDocumentEmbedder

    texts = load_texts(job)

    def make() -> Callable[[], list[Any]]:
        emb = GeminiDocumentEmbedder(
            api_base_url=job["base_url"],
            dimensions=job["dims"],
            batch_size=100,
            progress_bar=False,
            settings=gemb2_settings(job),
        )
        emb.warm_up()
        warm(emb.embedder)
        docs = [Document(content=t) for t in texts]
        return lambda: [d.embedding for d in emb.run(documents=docs)["documents"]]

    return ingest(job, make, len(texts), ["gemb2", "haystack-ai"])


def haystack_media(job: Job) -> Result:
    from haystack import Document
    from haystack_integrations.components.embedders.gemb2 import GeminiDocumentEmbedder

    paths = media_paths(job)

    def make() -> Callable[[], list[Any]]:
        emb = GeminiDocumentEmbedder(
            api_base_url=job["base_url"],
            dimensions=job["dims"],
            batch_size=100,
            progress_bar=False,
            settings=gemb2_settings(job),
        )
        emb.warm_up()
        warm(emb.embedder)
        docs = [Document(content="", meta={"file_path": str(p)}) for p in paths]
        return lambda: [d.embedding for d in emb.run(documents=docs)["documents"]]

    return ingest(job, make, len(paths), ["gemb2", "haystack-ai"])


def chroma_text(job: Job) -> Result:
    from gemb2.stores.chroma import GeminiEmbeddingFunction

    texts = load_texts(job)

    def make() -> Callable[[], Any]:
        ef = GeminiEmbeddingFunction(
            base_url=job["base_url"], dimensions=job["dims"], **gemb2_settings(job)
        )
        warm(ef.embedder)
        return lambda: ef(texts)

    return ingest(job, make, len(texts), ["gemb2", "chromadb"])


def chroma_media(job: Job) -> Result:
    from gemb2.stores.chroma import GeminiEmbeddingFunction, GeminiMediaLoader

    uris = [str(p) for p in media_paths(job)]

    def make() -> Callable[[], Any]:
        ef = GeminiEmbeddingFunction(
            base_url=job["base_url"], dimensions=job["dims"], **gemb2_settings(job)
        )
        warm(ef.embedder)
        loader = GeminiMediaLoader()
        return lambda: ef(cast(Any, loader(uris)))  # Items: the loader's output

    return ingest(job, make, len(uris), ["gemb2", "chromadb"])


# --------------------------------------------------------------------------- the anchors


def anchor_langchain_text(job: Job) -> Result:
    from langchain_google_genai import GoogleGenerativeAIEmbeddings

    texts = load_texts(job)

    def make() -> Callable[[], list[list[float]]]:
        emb = GoogleGenerativeAIEmbeddings(
            model=MODEL, base_url=job["base_url"], output_dimensionality=job["dims"]
        )
        return lambda: emb.embed_documents(texts, batch_size=100)

    return ingest(job, make, len(texts), ["langchain-google-genai"])


def anchor_langchain_media(job: Job) -> Result:
    from langchain_google_genai import GoogleGenerativeAIEmbeddings

    pk = ["langchain-google-genai"]
    if hasattr(GoogleGenerativeAIEmbeddings, "embed_image"):
        return {"status": "failed", "note": "has embed_image now: add a media runner"}
    return cannot("text-only `Embeddings` (no `embed_image`; its docs say: use the SDK)", pk)


def anchor_llamaindex_text(job: Job) -> Result:
    from llama_index.core.schema import Document
    from llama_index.embeddings.google_genai import GoogleGenAIEmbedding

    texts = load_texts(job)

    def make() -> Callable[[], list[Any]]:
        emb = GoogleGenAIEmbedding(
            model_name=MODEL,
            http_options={"base_url": job["base_url"]},
            embedding_config={"output_dimensionality": job["dims"]},
            embed_batch_size=100,
        )
        docs = [Document(text=t) for t in texts]
        return _llamaindex_run(emb, docs, job.get("async", False))

    return ingest(job, make, len(texts), ["llama-index-embeddings-google-genai"])


def anchor_llamaindex_media(job: Job) -> Result:
    from llama_index.core.embeddings import MultiModalEmbedding
    from llama_index.embeddings.google_genai import GoogleGenAIEmbedding

    pk = ["llama-index-embeddings-google-genai"]
    if issubclass(GoogleGenAIEmbedding, MultiModalEmbedding):
        return {"status": "failed", "note": "is multimodal now: add a media runner"}
    return cannot("a text `BaseEmbedding`, not a `MultiModalEmbedding`: no media method", pk)


def anchor_haystack_text(job: Job) -> Result:
    from haystack import Document
    from haystack_integrations.components.embedders.google_genai import (
        GoogleGenAIDocumentEmbedder,
    )

    texts = load_texts(job)

    def make() -> Callable[[], list[Any]]:
        emb = GoogleGenAIDocumentEmbedder(
            model=MODEL,
            batch_size=100,
            progress_bar=False,
            config={"output_dimensionality": job["dims"]},
        )
        emb.warm_up()
        docs = [Document(content=t) for t in texts]
        return lambda: [d.embedding for d in emb.run(documents=docs)["documents"]]

    return ingest(job, make, len(texts), ["google-genai-haystack"])


def anchor_haystack_media(job: Job) -> Result:
    from haystack import Document
    from haystack_integrations.components.embedders.google_genai import (
        GoogleGenAIMultimodalDocumentEmbedder,
    )

    paths = media_paths(job)

    def make() -> Callable[[], list[Any]]:
        emb = GoogleGenAIMultimodalDocumentEmbedder(
            model=MODEL,
            batch_size=100,
            progress_bar=False,
            config={"output_dimensionality": job["dims"]},
        )
        emb.warm_up()
        docs = [Document(meta={"file_path": str(p)}) for p in paths]
        return lambda: [d.embedding for d in emb.run(documents=docs)["documents"]]

    return ingest(job, make, len(paths), ["google-genai-haystack"])


def anchor_chroma_text(job: Job) -> Result:
    from chromadb.utils.embedding_functions.google_embedding_function import (
        GoogleGeminiEmbeddingFunction,
    )

    texts = load_texts(job)

    def make() -> Callable[[], list[Any]]:
        ef = GoogleGeminiEmbeddingFunction(model_name=MODEL, dimension=job["dims"])
        # Chroma hands the function a whole add() at once; the API takes 100 per call,
        # so give it the best chance: 100 at a time
        return lambda: [v for i in range(0, len(texts), 100) for v in ef(texts[i : i + 100])]

    result = ingest(job, make, len(texts), ["chromadb"])
    if result["status"] == "wrong":
        result["note"] += (
            " (a list of strings becomes ONE Content for gemini-embedding-2: one vector per call)"
        )
    return result


def anchor_chroma_media(job: Job) -> Result:
    import numpy as np
    from chromadb.utils.embedding_functions.google_embedding_function import (
        GoogleGeminiEmbeddingFunction,
    )

    ef = GoogleGeminiEmbeddingFunction(model_name=MODEL, dimension=job["dims"])
    try:
        ef([np.zeros((8, 8, 3), dtype=np.uint8)])  # type: ignore[list-item]
    except ValueError as exc:
        return cannot(f"`EmbeddingFunction[Documents]` only: {exc}", ["chromadb"])
    return {"status": "failed", "note": "accepted an image now: add a media runner"}


# --------------------------------------------------------------------------- references


def _sdk_client(job: Job) -> Any:
    from google import genai
    from google.genai import types

    return genai.Client(
        api_key="emulator-not-a-key", http_options=types.HttpOptions(base_url=job["base_url"])
    )


def _sdk_loop(client: Any, contents: list[Any], dims: int) -> list[list[float]]:
    """The plainest correct use of google-genai: one Content per input, 100 per call."""
    from google.genai import types

    config = types.EmbedContentConfig(output_dimensionality=dims)
    out: list[list[float]] = []
    for i in range(0, len(contents), 100):
        r = client.models.embed_content(model=MODEL, contents=contents[i : i + 100], config=config)
        out.extend(list(e.values) for e in r.embeddings)
    return out


def bare_text(job: Job) -> Result:
    from google.genai import types

    texts = load_texts(job)

    def make() -> Callable[[], list[list[float]]]:
        client = _sdk_client(job)

        def run() -> list[list[float]]:
            contents = [types.Content(parts=[types.Part(text=t)]) for t in texts]
            return _sdk_loop(client, contents, job["dims"])

        return run

    return ingest(job, make, len(texts), [])


def bare_media(job: Job) -> Result:
    from google.genai import types

    paths = media_paths(job)

    def make() -> Callable[[], list[list[float]]]:
        client = _sdk_client(job)

        def run() -> list[list[float]]:
            contents = [
                types.Content(
                    parts=[types.Part.from_bytes(data=p.read_bytes(), mime_type=_mime(p))]
                )
                for p in paths
            ]
            return _sdk_loop(client, contents, job["dims"])

        return run

    return ingest(job, make, len(paths), [])


def _mime(p: Path) -> str:
    mime = mimetypes.guess_type(p.name)[0] or "application/octet-stream"
    return {"audio/x-wav": "audio/wav"}.get(mime, mime)


def overhead(job: Job) -> Result:
    """The plain SDK loop and gemb2 (its defaults) over the same texts, alternating in one
    process so both see the same machine; the run with the least CPU of each is kept."""
    from google.genai import types

    from gemb2 import Embedder

    texts = load_texts(job)
    client = _sdk_client(job)
    emb = Embedder(base_url=job["base_url"], dimensions=job["dims"])
    warm(emb)

    def bare() -> list[list[float]]:
        contents = [types.Content(parts=[types.Part(text=t)]) for t in texts]
        return _sdk_loop(client, contents, job["dims"])

    def api_client() -> list[list[float]]:
        """The same requests gemb2 sends, posted by hand through the SDK's API client: what
        this SDK costs with no per-Content validation and no gemb2 at all."""
        api, out = client._api_client, []
        for i in range(0, len(texts), 100):
            body = {
                "requests": [
                    {
                        "content": {"parts": [{"text": t}]},
                        "outputDimensionality": job["dims"],
                        "model": f"models/{MODEL}",
                    }
                    for t in texts[i : i + 100]
                ]
            }
            answer = api.request("post", f"models/{MODEL}:batchEmbedContents", body, None)
            out.extend(e["values"] for e in json.loads(answer.body)["embeddings"])
        return out

    clients = {"bare": bare, "api_client": api_client, "gemb2": lambda: emb.embed(texts)}
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in clients}
    status, note = "ok", ""
    for _ in range(int(job.get("repeat", 3))):
        for name, fn in clients.items():
            vectors, wall, cpu = timed(fn)
            runs[name].append({"wall_s": wall, "cpu_s": cpu})
            st, nt = check(vectors, len(texts), job["dims"])
            if st != "ok":
                status, note = st, f"{name}: {nt}"
    best = {
        name: {
            "wall_s": min(r["wall_s"] for r in rs),
            "cpu_s": min(r["cpu_s"] for r in rs),
        }
        for name, rs in runs.items()
    }
    return {
        "status": status,
        "note": note,
        "items": len(texts),
        "best": best,
        "runs": runs,
        "calls_expected": len(clients) * int(job.get("repeat", 3)) * -(-len(texts) // 100),
        "versions": versions("gemb2"),
    }


# --------------------------------------------------------------------------- re-index


def reindex(job: Job) -> Result:
    """``gemb2 index`` twice over one folder, in process (the CLI's objects, without the
    interpreter start-up that would swamp a second run that has nothing to do)."""
    import chromadb
    from chromadb.config import Settings

    from gemb2 import VectorCache
    from gemb2.ingest.indexer import index_paths
    from gemb2.stores.chroma import GeminiEmbeddingFunction, open_collection

    db = Path(tempfile.mkdtemp(prefix="reindex-", dir=job.get("tmp")))
    client = chromadb.PersistentClient(path=str(db), settings=Settings(anonymized_telemetry=False))
    ef = GeminiEmbeddingFunction(
        base_url=job["base_url"], dimensions=job["dims"], **gemb2_settings(job)
    )
    collection = open_collection(client, "bench", ef)
    embedder = ef.embedder
    embedder.cache = VectorCache(db / "vector-cache.sqlite")
    runs = []
    for _ in range(2):
        before = embedder.usage.requests
        report, wall, cpu = timed(lambda: index_paths(job["paths"], collection, embedder))
        runs.append(
            {
                "wall_s": wall,
                "cpu_s": cpu,
                "calls": embedder.usage.requests - before,
                "files_indexed": report.files_indexed,
                "files_unchanged": report.files_unchanged,
                "items_written": report.items_written,
                "skipped": len(report.skipped),
            }
        )
    count = collection.count()
    status = "ok" if runs[0]["skipped"] == 0 and count == runs[0]["items_written"] else "wrong"
    return {
        "status": status,
        "note": "" if status == "ok" else f"{count} records, runs: {runs}",
        "runs": runs,
        "records": count,
        "versions": versions("gemb2", "chromadb"),
    }


# --------------------------------------------------------------------------- memory


class RssSampler:
    """Peak resident memory per phase, sampled from /proc every few milliseconds."""

    def __init__(self, interval: float = 0.005) -> None:
        self.interval = interval
        self.page = os.sysconf("SC_PAGE_SIZE")
        self.phase = "start"
        self.peaks: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def rss(self) -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * self.page

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def sample(self) -> None:
        value = self.rss()
        if value > self.peaks.get(self.phase, 0):
            self.peaks[self.phase] = value

    def enter(self, phase: str) -> None:
        self.sample()
        self.phase = phase
        self.sample()

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()


def memory(job: Job) -> Result:
    """Peak RSS while ``index_paths`` indexes a long video (then, with ``texts_dir``, a
    folder of texts), set up as ``gemb2 index`` runs it. ``max_inline_bytes`` lowers the payload per call (a memory bound)."""
    with RssSampler() as rss:
        import chromadb
        from chromadb.config import Settings

        from gemb2 import Limits
        from gemb2.ingest.indexer import bound_malloc, index_paths
        from gemb2.ingest.loading import load_file
        from gemb2.stores.chroma import GeminiEmbeddingFunction, open_collection

        if job.get("bound_malloc", True):  # the tricks case runs it without, to compare
            bound_malloc()  # as `gemb2 index` does before it indexes
        db = Path(tempfile.mkdtemp(prefix="memory-", dir=job.get("tmp")))
        client = chromadb.PersistentClient(
            path=str(db), settings=Settings(anonymized_telemetry=False)
        )
        settings = gemb2_settings(job)
        if job.get("max_inline_bytes"):
            settings["limits"] = Limits(max_inline_bytes=job["max_inline_bytes"])
        ef = GeminiEmbeddingFunction(base_url=job["base_url"], dimensions=job["dims"], **settings)
        collection = open_collection(client, "bench", ef)
        collection.count()  # Chroma's own start-up belongs to the baseline
        warm(ef.embedder)  # so do the SDK client and the media readers' imports
        rss.enter("baseline")
        time.sleep(0.05)
        rss.enter("video")
        video, vwall, _ = timed(lambda: index_paths([job["video"]], collection, ef.embedder))
        video_calls = ef.embedder.usage.requests
        texts, twall = None, 0.0
        if job.get("texts_dir"):
            rss.enter("texts")
            texts, twall, _ = timed(
                lambda: index_paths([job["texts_dir"]], collection, ef.embedder)
            )
        rss.enter("after")
    pieces = load_file(job["video"])
    sizes = [sum(m.size for m in it.media) for it in pieces]
    skipped = video.skipped + (texts.skipped if texts else [])
    ok = not skipped and video.items_written == len(pieces)
    return {
        "status": "ok" if ok else "wrong",
        "note": "" if ok else f"skipped: {skipped[:2]}",
        "peaks_mb": {k: v / 2**20 for k, v in rss.peaks.items()},
        "ru_maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "video_bytes": Path(job["video"]).stat().st_size,
        "segments": len(pieces),
        "largest_segment_bytes": max(sizes),
        "video_wall_s": vwall,
        "video_calls": video_calls,
        "texts_wall_s": twall,
        "text_items": texts.items_written if texts else 0,
        "calls": ef.embedder.usage.requests,
        "versions": versions("gemb2", "chromadb"),
    }


# --------------------------------------------------------------------------- speed tricks


def tricks_cpu(job: Job) -> Result:
    """Each CPU speed trick in src/ beside its plain version, on its case (tricks.py)."""
    import tricks

    result = tricks.tricks_cpu(job, load_texts(job), warm)
    result["versions"] = versions("gemb2")
    return result


# --------------------------------------------------------------------------- Matryoshka


# shortlist sizes (k x this) whose recall@10 the Matryoshka case reports
OVERSAMPLES = (1, 2, 3, 4, 6, 8)


def matryoshka(job: Job) -> Result:
    """Shortlist on 768-d heads + re-rank on full vectors, against a 3072-d collection,
    both measured against exact brute-force search over the full vectors."""
    import chromadb
    import numpy as np
    from chromadb.config import Settings

    from gemb2 import Embedder
    from gemb2.stores.matryoshka import FullVectorStore, MatryoshkaIndex, shrink
    from gemb2.testing.emulator.vectors import PartFeatures, content_vector, space_of

    n, n_queries, small = int(job["items"]), int(job["queries"]), int(job["small_dims"])
    k, oversample = 10, int(job["oversample"])
    docs, queries = _matryoshka_texts(n, n_queries)
    space = space_of(MODEL)

    def vec(text: str) -> Any:
        return content_vector(space, [PartFeatures(kind="text", text=text)], text)

    t0 = time.perf_counter()
    full = np.stack([vec(t) for t in docs]).astype(np.float32)
    qs = np.stack([vec(q) for q in queries]).astype(np.float32)
    gen_s = time.perf_counter() - t0
    exact = np.argsort(-(qs @ full.T), axis=1)[:, :k]
    ids = [f"d{i}" for i in range(n)]

    root = Path(tempfile.mkdtemp(prefix="matryoshka-", dir=job.get("tmp")))
    settings = Settings(anonymized_telemetry=False)
    conf: Any = {"hnsw": {"space": "cosine"}}
    full_dir, small_dir = root / "full", root / "small"
    col_full = chromadb.PersistentClient(path=str(full_dir), settings=settings).create_collection(
        "full3072", configuration=conf, embedding_function=None
    )
    col_small = chromadb.PersistentClient(path=str(small_dir), settings=settings).create_collection(
        f"small{small}", configuration=conf, embedding_function=None
    )
    store = FullVectorStore(root / "side" / "full.sqlite", full.shape[1])
    embedder = Embedder(base_url=job["base_url"], dimensions=full.shape[1])
    index = MatryoshkaIndex(col_small, store, embedder, small_dims=small, oversample=oversample)
    step = 2000

    def build_full() -> None:
        for s in range(0, n, step):
            col_full.add(ids=ids[s : s + step], embeddings=full[s : s + step])

    def build_small() -> None:
        target = index.as_collection()
        for s in range(0, n, step):
            target.upsert(ids[s : s + step], cast(Any, full[s : s + step]))

    _, full_build_s, _ = timed(build_full)
    _, small_build_s, _ = timed(build_small)

    def search_full(q: Any) -> list[str]:
        res = col_full.query(
            query_embeddings=[q], n_results=k, include=["metadatas", "documents", "distances"]
        )
        return list(res["ids"][0])

    def search_small(q: Any) -> list[str]:
        return [h.id for h in index.query_vector(q, k)]

    def search_head(q: Any) -> list[str]:  # the small vectors alone: what re-ranking adds
        res = col_small.query(query_embeddings=[shrink(q, small)], n_results=k)
        return list(res["ids"][0])

    def brute(q: Any) -> list[str]:
        return [ids[i] for i in np.argsort(-(full @ q))[:k]]

    out: dict[str, Any] = {}
    searches = (
        ("full", search_full),
        ("matryoshka", search_small),
        ("head", search_head),
        ("exact", brute),
    )
    for _, fn in searches:
        for q in qs[:5]:
            fn(q)  # warm caches
    # every query through each search in turn (rotating who goes first), so drift in the
    # machine's speed reaches them all alike
    lat: dict[str, list[float]] = {name: [] for name, _ in searches}
    recall: dict[str, list[float]] = {name: [] for name, _ in searches}
    for qi, q in enumerate(qs):
        truth = {ids[i] for i in exact[qi]}
        for j in range(len(searches)):
            name, fn = searches[(qi + j) % len(searches)]
            t = time.perf_counter()
            got = fn(q)
            lat[name].append(time.perf_counter() - t)
            recall[name].append(len(truth & set(got)) / k)
    for name, _ in searches:
        out[name] = {
            "median_ms": 1000 * float(np.median(lat[name])),
            "p95_ms": 1000 * float(np.percentile(lat[name], 95)),
            "recall_at_10": float(np.mean(recall[name])),
        }
    # recall against the shortlist's size: the same collections, one index per oversample
    by_oversample: dict[str, float] = {}
    for over in OVERSAMPLES:
        swept = MatryoshkaIndex(col_small, store, embedder, small_dims=small, oversample=over)
        hits = [
            len({ids[i] for i in exact[qi]} & {h.id for h in swept.query_vector(q, k)}) / k
            for qi, q in enumerate(qs)
        ]
        by_oversample[str(over)] = float(np.mean(hits))
    side = sum(p.stat().st_size for p in (root / "side").iterdir())
    store.close()
    return {
        "status": "ok",
        "note": "",
        "items": n,
        "queries": n_queries,
        "small_dims": small,
        "oversample": oversample,
        "vectors_s": gen_s,
        "full_build_s": full_build_s,
        "small_build_s": small_build_s,
        "disk_mb": {
            "full_collection": _du(full_dir) / 2**20,
            "small_collection": _du(small_dir) / 2**20,
            "side_store": side / 2**20,
        },
        "disk_parts": {"full": _chroma_parts(full_dir), "small": _chroma_parts(small_dir)},
        "search": out,
        "recall_by_oversample": by_oversample,
        "versions": versions("gemb2", "chromadb"),
    }


def _matryoshka_texts(n: int, n_queries: int) -> tuple[list[str], list[str]]:
    """Documents on 400 topics of 12 words each, with shared background words; queries
    are 3-4 words of a topic, so each has many near matches and a real ranking to get right."""
    import random

    rng = random.Random(5)
    vocab = [
        f"{a}{b}" for a in ("ka", "lo", "mi", "ne", "su", "ta", "vo", "ri") for b in range(800)
    ]
    topics = [rng.sample(vocab, 12) for _ in range(400)]
    background = rng.sample(vocab, 600)
    docs = []
    for i in range(n):
        t = topics[rng.randrange(len(topics))]
        words = rng.sample(t, rng.randint(4, 8)) + rng.sample(background, rng.randint(3, 8))
        rng.shuffle(words)
        docs.append(" ".join(words) + f" doc{i}")
    queries = []
    for _ in range(n_queries):
        t = topics[rng.randrange(len(topics))]
        queries.append(" ".join(rng.sample(t, rng.randint(3, 4))))
    return docs, queries


def _du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _chroma_parts(path: Path) -> dict[str, int]:
    """Bytes of a persistent Chroma directory by part: the HNSW files, and chroma.sqlite3
    split into pages in use and free pages (left by the purged embeddings queue)."""
    import sqlite3

    parts = {"data_level0.bin": 0, "link_lists.bin": 0, "hnsw other": 0, "sqlite": 0}
    for p in path.rglob("*"):
        if p.is_file():
            key = p.name if p.name in parts else "hnsw other"
            parts["sqlite" if p.name.startswith("chroma.sqlite3") else key] += p.stat().st_size
    db = sqlite3.connect(f"file:{path / 'chroma.sqlite3'}?mode=ro", uri=True)
    free = (
        db.execute("PRAGMA freelist_count").fetchone()[0]
        * db.execute("PRAGMA page_size").fetchone()[0]
    )
    queued = db.execute("SELECT COUNT(*) FROM embeddings_queue").fetchone()[0]
    db.close()
    parts["sqlite free pages"] = free
    parts["sqlite"] -= free
    parts["queued records"] = queued
    return parts


# --------------------------------------------------------------------------- Ray Data


def _ray_rows(job: Job, rows: list[dict[str, Any]], column: str) -> Result:
    """``ds.map_batches(EmbedBatch)`` on a local cluster started before the clock (its
    ``ray.init`` takes seconds); timed: the dataset's whole execution, the actors'
    start-up included, as a user's job pays it."""
    import ray

    from gemb2.ray import EmbedBatch

    actors = int(job.get("actors", 2))
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    ray.data.DataContext.get_current().enable_progress_bars = False
    try:

        def make() -> Callable[[], list[Any]]:
            ds = ray.data.from_items(rows, override_num_blocks=max(actors, len(rows) // 500))
            kwargs = {
                column: column,
                "base_url": job["base_url"],
                "dimensions": job["dims"],
                **gemb2_settings(job),
            }
            pipe = ds.map_batches(
                EmbedBatch,
                fn_constructor_kwargs={
                    "text_column" if column == "text" else "media_column": column,
                    **{k: v for k, v in kwargs.items() if k != column},
                },
                batch_size=100,
                compute=ray.data.ActorPoolStrategy(size=actors),
            )
            return lambda: [r["embedding"] for r in pipe.take_all()]

        return ingest(job, make, len(rows), ["gemb2", "ray"])
    finally:
        ray.shutdown()


def ray_text(job: Job) -> Result:
    return _ray_rows(job, [{"text": t} for t in load_texts(job)], "text")


def ray_media(job: Job) -> Result:
    return _ray_rows(job, [{"media": str(p)} for p in media_paths(job)], "media")


# --------------------------------------------------------------------------- entry


JOBS: dict[str, Callable[[Job], Result]] = {
    f.__name__: f
    for f in (
        core_text,
        core_media,
        langchain_text,
        langchain_media,
        llamaindex_text,
        llamaindex_media,
        haystack_text,
        haystack_media,
        chroma_text,
        chroma_media,
        anchor_langchain_text,
        anchor_langchain_media,
        anchor_llamaindex_text,
        anchor_llamaindex_media,
        anchor_haystack_text,
        anchor_haystack_media,
        anchor_chroma_text,
        anchor_chroma_media,
        bare_text,
        bare_media,
        overhead,
        reindex,
        memory,
        matryoshka,
        tricks_cpu,
        ray_text,
        ray_media,
    )
}


def main(argv: list[str]) -> int:
    job: Job = json.loads(Path(argv[1]).read_text())
    try:
        result = JOBS[job["job"]](job)
    except Exception as exc:  # a failing integration is a result, not a crash
        result = {"status": "failed", "note": f"{type(exc).__name__}: {exc}"[:500]}
    result["python"] = sys.version.split()[0]
    print("RESULT " + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

"""Haystack + Chroma quick start: text and media Documents in one store, found by text or image.

Runs offline by default against gemb2's local emulator (a stand-in for the Gemini API whose
vectors come from the text a file carries, not Gemini's). Pass --live to use the real API
with GOOGLE_API_KEY or GEMINI_API_KEY set.

    python examples/haystack_quickstart.py ["a red circle"] [--live]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import tempfile
from pathlib import Path

os.environ.setdefault("HAYSTACK_TELEMETRY_ENABLED", "False")  # an offline example stays offline

from haystack import Document, Pipeline
from haystack.components.writers import DocumentWriter
from haystack_integrations.components.embedders.gemb2 import (
    GeminiDocumentEmbedder,
    GeminiMediaQueryEmbedder,
    GeminiTextEmbedder,
)
from haystack_integrations.components.retrievers.chroma import (
    ChromaEmbeddingRetriever,
)
from haystack_integrations.document_stores.chroma import ChromaDocumentStore

from gemb2.testing import samples
from gemb2.testing.emulator import emulator_unless


def make_files(folder: Path) -> None:
    """Real media files, each with a caption inside (the emulator embeds that caption)."""
    samples.make_png(folder / "red_circle.png", "a red circle", color=(255, 0, 0), shape="circle")
    samples.make_png(folder / "blue_square.png", "a blue square", color=(0, 0, 255), shape="square")
    samples.make_wav(folder / "piano.wav", 2, description="a piano playing a single note")
    samples.make_mp4(folder / "waves.mp4", 2, description="ocean waves at a beach")
    samples.make_pdf(
        folder / "nature.pdf",
        ["volcanoes erupt lava", "honeybees make honey", "glaciers carve valleys"],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("query", nargs="?", default="a red circle")
    parser.add_argument("--live", action="store_true", help="call the real Gemini API")
    args = parser.parse_args()

    with contextlib.ExitStack() as stack:
        base_url = stack.enter_context(emulator_unless(args.live))
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        make_files(folder)

        # Text documents and media documents (a file under root_path, a PDF page) side by side.
        # Media documents need content ("" will do): chroma-haystack skips content=None.
        documents = [
            Document(content="A recipe for banana bread.", meta={"source": "recipe.txt"}),
            Document(content="Notes on tuning a guitar.", meta={"source": "guitar.txt"}),
        ] + [
            Document(content="", meta={"file_path": name, "source": name})
            for name in ("red_circle.png", "blue_square.png", "piano.wav", "waves.mp4")
        ]
        documents += [
            Document(content="", meta={"file_path": "nature.pdf", "page_number": page})
            for page in (1, 2, 3)
        ]

        store = ChromaDocumentStore(
            collection_name="quickstart",
            persist_path=str(folder / "chroma"),
            distance_function="cosine",
        )
        settings = {"api_base_url": base_url, "dimensions": 768}

        indexing = Pipeline()
        indexing.add_component(
            "embedder",
            GeminiDocumentEmbedder(root_path=str(folder), progress_bar=False, **settings),
        )
        indexing.add_component("writer", DocumentWriter(store))
        indexing.connect("embedder.documents", "writer.documents")
        result = indexing.run(
            {"embedder": {"documents": documents}}, include_outputs_from={"embedder"}
        )
        print(f"indexed {result['writer']['documents_written']} documents")

        query = Pipeline()
        query.add_component("embedder", GeminiTextEmbedder(**settings))
        query.add_component("retriever", ChromaEmbeddingRetriever(store, top_k=3))
        query.connect("embedder.embedding", "retriever.query_embedding")

        print(f"\nquery: {args.query!r}")
        for rank, doc in enumerate(
            query.run({"embedder": {"text": args.query}})["retriever"]["documents"], start=1
        ):
            print(f"{rank}. {label(doc):<28} cosine distance {doc.score:.3f}")

        by_image = Pipeline()
        by_image.add_component(
            "embedder", GeminiMediaQueryEmbedder(root_path=str(folder), **settings)
        )
        by_image.add_component("retriever", ChromaEmbeddingRetriever(store, top_k=2))
        by_image.connect("embedder.embedding", "retriever.query_embedding")
        print("\nsimilar to blue_square.png:")
        hits = by_image.run({"embedder": {"source": "blue_square.png"}})["retriever"]["documents"]
        for rank, doc in enumerate(hits, start=1):
            print(f"{rank}. {label(doc)}")

        print(f"\nindexing usage: {result['embedder']['meta']['usage']}")
        if base_url:
            print("(stand-in vectors from the offline emulator, not Gemini's)")


def label(doc: Document) -> str:
    name = str(doc.meta.get("source") or doc.meta.get("file_path"))
    page = doc.meta.get("page_number")
    return f"{name} p.{page}" if page else name


if __name__ == "__main__":
    main()

"""LlamaIndex + Chroma quick start: a folder of text, images, audio, video and PDF in one
index; long files split to fit the model; text queries that find pictures, pages and scenes.

Runs offline by default against gemb2's local emulator (a stand-in for the Gemini
API whose vectors come from the text a file carries). Pass --live to use the real
API with GOOGLE_API_KEY set, and a folder of your own to index it instead.

    python examples/llamaindex_quickstart.py [FOLDER] [--live]
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
from pathlib import Path

import chromadb
from llama_index.core import VectorStoreIndex
from llama_index.core.ingestion import IngestionPipeline
from llama_index.vector_stores.chroma import ChromaVectorStore

from gemb2.testing import samples
from gemb2.testing.emulator import emulator_unless
from llamaindex_gemb2 import GeminiMediaNodeParser, GeminiMediaReader, GeminiMultiModalEmbedding

QUERIES = (
    "a red circle",
    "Roman aqueducts carrying water",
    "a sailing boat on a lake",
    "how to bake bread",
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", nargs="?", help="folder to index (default: a sample one)")
    parser.add_argument("--live", action="store_true", help="call the real Gemini API")
    args = parser.parse_args()

    with contextlib.ExitStack() as stack:
        base_url = stack.enter_context(emulator_unless(args.live))
        work = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        folder = Path(args.folder) if args.folder else work / "files"
        if not args.folder:
            # images, a WAV, a short MP4, an 8-page PDF and three text files ...
            samples.make_sample_corpus(folder)
            # ... and a 150 s video, longer than the model takes in one piece
            samples.make_mp4(
                folder / "lake.mp4",
                150,
                description="a sailing boat on a lake",
                fps=2,
                size=(64, 48),
            )

        embed_model = GeminiMultiModalEmbedding(dimensions=768, base_url=base_url)
        collection = chromadb.PersistentClient(path=str(work / "chroma")).get_or_create_collection(
            "quickstart", configuration={"hnsw": {"space": "cosine"}}
        )
        store = ChromaVectorStore(chroma_collection=collection)

        # one Document per file -> pieces that fit the model -> vectors -> Chroma
        pipeline = IngestionPipeline(
            transformations=[GeminiMediaNodeParser(), embed_model], vector_store=store
        )
        nodes = pipeline.run(documents=GeminiMediaReader().load_data(folder))
        print(f"stored {len(nodes)} nodes from {folder}")
        for node in nodes:
            if node.metadata.get("pieces", 1) > 1:
                print(
                    f"  piece {node.metadata['piece'] + 1}/{node.metadata['pieces']}: "
                    f"{node.get_content()}"
                )

        index = VectorStoreIndex.from_vector_store(store, embed_model=embed_model)
        retriever = index.as_retriever(similarity_top_k=1)
        print()
        for query in QUERIES:
            hit = retriever.retrieve(query)[0]
            text = hit.node.get_content().splitlines()[0][:60]
            print(f"{query!r} -> {text}  (score {hit.score:.3f})")
        print(f"\n{embed_model.usage.summary()}")


if __name__ == "__main__":
    main()

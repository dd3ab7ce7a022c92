"""LangChain + Chroma quick start: text and media in one index, a text query that finds a picture.

Runs offline by default against gemb2's local emulator (a stand-in for the Gemini
API whose vectors come from the text a file carries). Pass --live to use the real
API with GOOGLE_API_KEY set.

    python examples/langchain_quickstart.py ["a red circle"] [--live]
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
from pathlib import Path

import chromadb
from langchain_chroma import Chroma

from gemb2.testing import samples
from gemb2.testing.emulator import emulator_unless
from langchain_gemb2 import GeminiEmbeddings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("query", nargs="?", default="a red circle")
    parser.add_argument("--live", action="store_true", help="call the real Gemini API")
    args = parser.parse_args()

    with contextlib.ExitStack() as stack:
        base_url = stack.enter_context(emulator_unless(args.live))
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory()))

        # some real media files with a caption inside each
        red = samples.make_png(
            folder / "red_circle.png", "a red circle", color=(255, 0, 0), shape="circle"
        )
        blue = samples.make_png(
            folder / "blue_square.png", "a blue square", color=(0, 0, 255), shape="square"
        )
        waves = samples.make_mp4(folder / "waves.mp4", 2, description="ocean waves at a beach")

        # embeddings, a Chroma store, then texts and media side by side
        embeddings = GeminiEmbeddings(dimensions=768, base_url=base_url)
        store = Chroma(
            "quickstart",
            embeddings,
            client=chromadb.EphemeralClient(),
            collection_metadata={"hnsw:space": "cosine"},
        )
        store.add_texts(
            ["a recipe for banana bread", "notes on tuning a guitar"],
            metadatas=[{"source": "recipe.txt"}, {"source": "guitar.txt"}],
        )
        store.add_images(
            [str(red), str(blue), str(waves)],
            metadatas=[{"source": p.name} for p in (red, blue, waves)],
        )

        print(f"query: {args.query!r}")
        hits = store.similarity_search_with_score(args.query, k=5)
        for rank, (doc, distance) in enumerate(hits, start=1):
            print(f"{rank}. {doc.metadata['source']:<16} cosine distance {distance:.3f}")

        print("\nsimilar to blue_square.png:")
        for rank, doc in enumerate(store.similarity_search_by_image(str(blue), k=2), start=1):
            print(f"{rank}. {doc.metadata['source']}")
        print(f"\n{embeddings.usage.summary()}")


if __name__ == "__main__":
    main()

"""Index a folder into Chroma with the embedding spread over Ray Data actors, resumably.

The driver walks the folder and splits each file with gemb2's loader (what `gemb2 index`
does), skips what the collection already holds, and hands the new pieces to Ray Data
(`gemb2.ray.EmbedBatch` actors); their vectors are written to Chroma as they land. Run it
again and nothing already stored is embedded again.

Runs offline by default against gemb2's local emulator (its vectors are stand-ins) when
no GOOGLE_API_KEY / GEMINI_API_KEY is set; with one, it calls the Gemini API.

    python examples/ray_index.py FOLDER --db DIR [--chroma-url URL] [--collection NAME]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from urllib.parse import urlparse

import chromadb
import ray
from chromadb.config import Settings

from gemb2 import Embedder
from gemb2.ingest.indexer import index_paths
from gemb2.ray import RayEmbedder
from gemb2.testing.emulator import emulator_unless


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", help="folder (or file) to index")
    parser.add_argument("--db", help="Chroma database folder (embedded Chroma)")
    parser.add_argument("--chroma-url", help="a Chroma server instead, e.g. http://127.0.0.1:8000")
    parser.add_argument("--collection", default="ray_index", help="collection name")
    parser.add_argument("--dimensions", type=int, default=768, help="vector size (768)")
    parser.add_argument("--actors", type=int, default=2, help="Ray actors embedding (2)")
    parser.add_argument("--limiter", help="shared quota: sqlite:///PATH or redis://HOST:PORT/DB")
    parser.add_argument("--base-url", help="an endpoint of your own (e.g. a running emulator)")
    args = parser.parse_args()
    if not args.db and not args.chroma_url:
        parser.error("give --db DIR or --chroma-url URL")

    live = bool(os.environ.get("GOOGLE_API_KEY") or os.environ.get("GEMINI_API_KEY"))
    with contextlib.ExitStack() as stack:
        base_url = args.base_url or stack.enter_context(emulator_unless(live))
        settings = Settings(anonymized_telemetry=False)
        if args.chroma_url:
            url = urlparse(args.chroma_url)
            client = chromadb.HttpClient(
                host=url.hostname or "127.0.0.1",
                port=url.port or 8000,
                ssl=url.scheme == "https",
                settings=settings,
            )
        else:
            client = chromadb.PersistentClient(path=args.db, settings=settings)
        collection = client.get_or_create_collection(
            args.collection, configuration={"hnsw": {"space": "cosine"}}
        )
        # the driver's Embedder only plans and checks; the actors build their own from it
        embedder = stack.enter_context(
            Embedder(dimensions=args.dimensions, base_url=base_url, limiter=args.limiter)
        )
        if not ray.is_initialized():  # RAY_ADDRESS set: join that cluster, else start one
            local = {} if os.environ.get("RAY_ADDRESS") else {"include_dashboard": False}
            ray.init(log_to_driver=False, logging_level="ERROR", **local)
        ray.data.DataContext.get_current().enable_progress_bars = False
        remote = RayEmbedder(embedder, concurrency=args.actors)
        report = index_paths(
            [args.folder],
            collection,
            remote,  # type: ignore[arg-type]
            on_skip=lambda source, reason: print(f"skipped {source}: {reason}", file=sys.stderr),
        )
        print(
            f"indexed {report.files_indexed} files, {report.files_unchanged} unchanged, "
            f"{len(report.skipped)} skipped; {report.items_written} records written "
            f"({report.items_reused} reused from identical content); "
            f"{remote.sent} items embedded through Ray Data; "
            f"{collection.count()} records in {args.collection!r}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The ``gemb2`` command: index and search a folder of mixed media, embed, migrate, emulate."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gemb2 import __version__
from gemb2.cli import batch as batch_cli
from gemb2.cli import doctor
from gemb2.cli.store import (
    _client,
    _collection,
    _stored_settings,
    add_write_limit_arguments,
    write_limits,
)
from gemb2.engine.settings import API_KEY_ENV_VARS
from gemb2.errors import Gemb2Error, InputError, StoreError
from gemb2.model.catalog import DEFAULT_MODEL

STAND_IN_NOTICE = (
    "gemb2: no GOOGLE_API_KEY or GEMINI_API_KEY set: using the bundled offline emulator. "
    "Vectors and results are deterministic stand-ins, not Gemini's."
)


class _Session:
    """Where requests go: the given base URL, Google with a key, or a private emulator."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.emulator: Any = None
        self.base_url: str | None = args.base_url or os.environ.get("GEMB2_BASE_URL")
        has_key = any(os.environ.get(v) for v in API_KEY_ENV_VARS)
        vertex = os.environ.get("GOOGLE_GENAI_USE_VERTEXAI", "").lower() in ("1", "true")
        if not self.base_url and not has_key and not vertex:
            from gemb2.testing.emulator import Emulator

            self.emulator = Emulator(port=0)
            self.emulator.start()
            self.base_url = self.emulator.base_url
            print(STAND_IN_NOTICE, file=sys.stderr)
        self.vertex = vertex
        # request timeout, retry budget and pacing apply to every embedder this command builds
        self.transport = {
            "timeout": getattr(args, "timeout", None),
            "max_retries": getattr(args, "max_retries", None),
            "requests_per_minute": getattr(args, "requests_per_minute", None),
            "tokens_per_minute": getattr(args, "tokens_per_minute", None),
            "max_concurrency": getattr(args, "max_concurrency", None),
            "adaptive_concurrency": False if getattr(args, "fixed_concurrency", False) else None,
            "limiter": _limiter(args),
        }
        self.limits = getattr(args, "limits", None)  # a profile file: its limits, checked

    def settings(self, **kw: Any) -> dict[str, Any]:
        out = {k: v for k, v in {**self.transport, **kw}.items() if v is not None}
        if self.limits is not None:
            from gemb2.model.profile import load_limits

            out["limits"] = load_limits(self.limits, out.get("model") or DEFAULT_MODEL)
        if self.base_url:
            out["base_url"] = self.base_url
        if self.vertex:
            out.update(
                vertexai=True,
                project=os.environ.get("GOOGLE_CLOUD_PROJECT"),
                location=os.environ.get("GOOGLE_CLOUD_LOCATION", "us-central1"),
            )
        return out

    def close(self) -> None:
        if self.emulator is not None:
            self.emulator.stop()


def _limiter(args: argparse.Namespace) -> str | None:
    """``--limiter``, else GEMB2_LIMITER (read by the engine), else the per-user file: the
    gemb2 processes of one user share their quota with no flag at all."""
    from gemb2.engine import limiter_backends as lb

    if not hasattr(args, "limiter"):
        return None  # a command that sends no embedding calls of its own
    if args.limiter:
        return str(lb.check_url(args.limiter))
    return None if os.environ.get(lb.ENV_VAR, "").strip() else lb.AUTO


def _positive(kind: type[float] | type[int]) -> Any:
    def parse(text: str) -> float | int:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be above 0, got {text}")
        return value

    return parse


def _pacing(p: argparse.ArgumentParser) -> None:
    """The quota flags of the commands that embed."""
    p.add_argument(
        "--limiter",
        metavar="URL",
        help="where the pacing is shared: sqlite:///PATH, redis://HOST:PORT/DB, local, or "
        "auto (default; env GEMB2_LIMITER): a per-user file every gemb2 process shares",
    )
    p.add_argument(
        "--requests-per-minute", type=_positive(float), metavar="N", help="the quota's requests"
    )
    p.add_argument(
        "--tokens-per-minute", type=_positive(float), metavar="N", help="the quota's tokens"
    )
    p.add_argument(
        "--max-concurrency",
        type=_positive(int),
        metavar="N",
        help="most calls in flight (default 16; the window adapts up to it)",
    )
    p.add_argument(
        "--fixed-concurrency",
        action="store_true",
        help="keep --max-concurrency calls in flight, not adapting to the service's answers",
    )


def _matryoshka(
    args: argparse.Namespace, collection: Any, session: _Session, full_dims: int
) -> Any:
    """The collection's small vectors plus the full-size side store beside it."""
    from gemb2.engine.embedder import Embedder
    from gemb2.stores.matryoshka import FullVectorStore, MatryoshkaIndex

    small = int((collection.metadata or {})["gemb2:dimensions"])
    store = FullVectorStore(Path(args.db) / f"{args.collection}.full.sqlite", full_dims)
    full = Embedder(**session.settings(model=args.model, dimensions=full_dims))
    return MatryoshkaIndex(
        collection, store, full, small_dims=small, oversample=getattr(args, "oversample", 4)
    )


def cmd_index(args: argparse.Namespace, session: _Session) -> int:
    from gemb2.engine.cache import VectorCache
    from gemb2.ingest.indexer import IndexReport, bound_malloc, index_paths

    bound_malloc()  # this process is ours: hand large freed buffers back (see its doc)

    if args.batch_mode:
        return batch_cli.submit_index(args, session)
    limits = write_limits(args)  # a bad flag is refused before any work
    client = _client(args)
    extra = {}
    if args.rerank_dims:
        extra["metadata"] = {"gemb2:full_dimensions": args.dimensions or 3072}
    collection, ef = _collection(
        client,
        args.collection,
        session,
        model=args.model,
        dimensions=args.rerank_dims or args.dimensions,
        **extra,
    )
    embedder = ef.embedder
    target: Any = collection
    if args.rerank_dims:
        # embed once at full size: the collection gets the heads, the side store the rest
        index = _matryoshka(args, collection, session, args.dimensions or 3072)
        embedder, target = index.embedder, index.as_collection()
    if args.db:
        embedder.cache = VectorCache(Path(args.db) / "vector-cache.sqlite")
    t0 = time.monotonic()

    report = IndexReport()
    try:
        index_paths(
            args.paths,
            target,
            embedder,
            progress=not args.quiet,
            on_skip=_print_skip,
            report=report,
            write_limits=limits,
        )
    except StoreError:
        raise  # its one line says what failed, what is stored and that a re-run resumes
    except BaseException:
        # what landed is stored: say how far it got, then let main() report the error
        print(
            f"stored before the failure: {report.items_written} items "
            f"({embedder.usage.summary()}); run the same command again to resume "
            "(stored items are not embedded again)",
            file=sys.stderr,
        )
        raise
    elapsed = time.monotonic() - t0
    usage = embedder.usage
    print(
        f"indexed {report.files_indexed} files ({report.items_written} items) into "
        f"{args.collection!r} in {elapsed:.1f}s; {report.files_unchanged} unchanged, "
        f"{len(report.skipped)} skipped, {report.removed_stale} stale pieces removed"
    )
    print(
        f"{usage.requests} API requests, {usage.retries} retries, {usage.cached} from cache, "
        f"{report.items_reused + usage.deduplicated} copies of identical content (no call); "
        f"{usage.cost_line()}"
    )
    return 0


def _print_skip(source: str, reason: str) -> None:
    """One line per skipped file; a name that is not UTF-8 is shown escaped, as stored."""
    from gemb2.ingest.loading import source_name

    print(f"skipped {source_name(source)[0]}: {reason}", file=sys.stderr)


def _query_item(args: argparse.Namespace) -> Any:
    from gemb2.inputs.media import Item

    files = [f for f in (args.image, args.audio, args.video, args.pdf) if f]
    if bool(files) == bool(args.query):
        raise InputError("give either a text query or one of --image/--audio/--video/--pdf")
    if files:
        return Item.from_path(files[0])
    return Item.of(args.query)


def cmd_search(args: argparse.Namespace, session: _Session) -> int:
    client = _client(args)
    stored = _stored_settings(client, args.collection)
    if not stored:
        raise InputError(f"collection {args.collection!r} not found; run `gemb2 index` first")
    collection, ef = _collection(
        client,
        args.collection,
        session,
        model=args.model or stored.get("model"),
        dimensions=args.dimensions or stored.get("dimensions"),
    )
    if args.rerank:
        full_dims = (collection.metadata or {}).get("gemb2:full_dimensions")
        if not full_dims:
            raise InputError(
                f"collection {args.collection!r} has no full-size side store; "
                "index it with --rerank-dims to use --rerank"
            )
        index = _matryoshka(args, collection, session, int(full_dims))
        hits = index.query(_query_item(args), k=args.k)
        found = [(h.id, h.metadata, h.score, h.document) for h in hits]
    else:
        vector = ef.embedder.embed([_query_item(args)], role="query")[0]
        res = collection.query(
            query_embeddings=[vector],
            n_results=args.k,
            include=["metadatas", "distances", "documents"],
        )
        found = [
            (rid, meta, 1.0 - float(dist), doc)
            for rid, meta, dist, doc in zip(
                res["ids"][0],
                res["metadatas"][0],
                res["distances"][0],
                res["documents"][0],
                strict=True,
            )
        ]
    rows = []
    for rank, (rid, meta, score, doc) in enumerate(found, start=1):
        meta = meta or {}
        row = {
            "rank": rank,
            "id": rid,
            "score": round(score, 6),
            "source": meta.get("source"),
            "modality": meta.get("modality"),
            "page_start": meta.get("page_start"),
            "page_end": meta.get("page_end"),
            "start_seconds": meta.get("start_seconds"),
            "end_seconds": meta.get("end_seconds"),
            "text": doc if meta.get("modality") == "text" else None,
        }
        rows.append(row)
    if args.json:
        print(json.dumps({"query": args.query or None, "results": rows}, indent=2))
        return 0
    if session.emulator is not None:
        print("(stand-in vectors from the offline emulator, not Gemini's)")
    for row in rows:
        where = ""
        if row["page_start"] is not None:
            where = f" pages {row['page_start']}-{row['page_end']}"
        elif row["start_seconds"] is not None:
            where = f" {row['start_seconds']:.1f}-{row['end_seconds']:.1f} s"
        print(f"{row['rank']:>2}. {row['score']:.4f}  {row['modality']:<6} {row['source']}{where}")
    return 0


def cmd_embed(args: argparse.Namespace, session: _Session) -> int:
    from gemb2.engine.embedder import Embedder
    from gemb2.inputs.media import Item

    items = [Item.from_path(v) if Path(v).is_file() else Item.of(v) for v in args.inputs]
    with Embedder(**session.settings(model=args.model, dimensions=args.dimensions)) as emb:
        vectors = emb.embed(items, role="query" if args.query else "document")
    for value, vector in zip(args.inputs, vectors, strict=True):
        print(json.dumps({"input": value, "dimensions": len(vector), "values": vector}))
    return 0


def cmd_migrate(args: argparse.Namespace, session: _Session) -> int:
    from gemb2.engine.cache import VectorCache
    from gemb2.ingest.indexer import bound_malloc, index_paths
    from gemb2.ingest.loading import source_name, source_path
    from gemb2.stores.reads import paged_get
    from gemb2.stores.writer import write_records

    bound_malloc()  # this process is ours: hand large freed buffers back (see its doc)

    limits = write_limits(args)
    client = _client(args)
    source = client.get_collection(args.from_collection)
    records = paged_get(source, limits, include=["metadatas", "documents"])
    # the real paths (a name that is not UTF-8 is stored escaped)
    files = sorted({str(source_path(m)) for m in records["metadatas"] if m and m.get("source")})
    missing = [f for f in files if not Path(f).is_file()]
    present = [f for f in files if Path(f).is_file()]
    loose = [
        (rid, doc)
        for rid, meta, doc in zip(
            records["ids"], records["metadatas"], records["documents"], strict=True
        )
        if not (meta or {}).get("source") and doc
    ]
    target, ef = _collection(
        client, args.to_collection, session, model=args.model, dimensions=args.dimensions
    )
    if args.db and not args.chroma_url:
        ef.embedder.cache = VectorCache(Path(args.db) / "vector-cache.sqlite")
    report = index_paths(present, target, ef.embedder, progress=not args.quiet, write_limits=limits)
    if loose:
        vectors = ef.embedder.embed([d for _, d in loose], role="document")
        write_records(
            target,
            [rid for rid, _ in loose],
            vectors,
            documents=[d for _, d in loose],
            metadatas=[{"modality": "text", "migrated_from": args.from_collection}] * len(loose),
            limits=limits,
        )
    for f in missing:
        print(f"skipped {source_name(f)[0]}: source file no longer exists", file=sys.stderr)
    print(
        f"migrated {report.files_indexed + report.files_unchanged} files "
        f"({report.items_written} items) and {len(loose)} text records from "
        f"{args.from_collection!r} to {args.to_collection!r} with {ef.embedder.model} "
        f"at {ef.embedder.dimensions} dimensions; {len(missing)} sources missing"
    )
    return 0


def cmd_emulator(args: argparse.Namespace) -> int:
    from gemb2.testing.emulator.cli import run

    return int(run(args))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gemb2",
        description="Gemini Embedding 2 for mixed media: index, search, embed, migrate.",
    )
    parser.add_argument("--version", action="version", version=f"gemb2 {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log retries and calls")
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser, chroma: bool = True) -> None:
        p.add_argument("--model", help="gemini-embedding-2 (default) or gemini-embedding-001")
        p.add_argument("--dimensions", type=int, help="128..3072 (default 3072)")
        p.add_argument("--base-url", help="API endpoint (a proxy or `gemb2 emulator`)")
        p.add_argument(
            "--limits",
            metavar="FILE",
            help="take the model's limits from a profile (e.g. written by `gemb2 doctor`)",
        )
        p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
        p.add_argument("--timeout", type=float, help="seconds per API request (default 60)")
        p.add_argument(
            "--max-retries",
            type=int,
            help="retries of a failed API call (429, 5xx, dropped or timed out; default 6)",
        )
        if chroma:
            p.add_argument("--db", type=Path, default=Path("gemb2-db"), help="Chroma directory")
            p.add_argument("--chroma-url", help="a Chroma server, e.g. http://127.0.0.1:8000")
            p.add_argument("--collection", default="gemb2", help="collection name")

    p = sub.add_parser("index", help="embed a folder or files into ChromaDB")
    p.add_argument("paths", nargs="+", help="files or folders")
    p.add_argument(
        "--rerank-dims",
        type=int,
        help="store N-d heads for search and full vectors in a side store (see search --rerank)",
    )
    common(p)
    add_write_limit_arguments(p)
    _pacing(p)
    batch_cli.add_arguments_index(p)
    p = sub.add_parser("search", help="search an indexed collection")
    p.add_argument("query", nargs="?", help="text query")
    for kind in ("image", "audio", "video", "pdf"):
        p.add_argument(f"--{kind}", type=Path, help=f"search by a {kind} file")
    p.add_argument("-k", type=int, default=5, help="results to show")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument(
        "--rerank", action="store_true", help="shortlist on small vectors, re-rank on full ones"
    )
    p.add_argument("--oversample", type=int, default=4, help="shortlist size is k x this")
    common(p)
    p = sub.add_parser("embed", help="print vectors as JSON lines")
    p.add_argument("inputs", nargs="+", help="texts or file paths")
    p.add_argument("--query", action="store_true", help="embed as queries")
    common(p, chroma=False)
    _pacing(p)
    p = sub.add_parser("migrate", help="re-embed a collection with another model")
    p.add_argument("--from-collection", required=True)
    p.add_argument("--to-collection", required=True)
    common(p)
    add_write_limit_arguments(p)
    _pacing(p)
    batch_cli.add_jobs_parser(sub)
    p = sub.add_parser("emulator", help="run the offline Gemini API stand-in")
    from gemb2.testing.emulator.cli import add_arguments

    add_arguments(p)
    doctor.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from gemb2.redaction import guard, redact_text

    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(name)s: %(message)s"
    )
    for log_handler in logging.getLogger().handlers:  # no key on stderr, from any library's log
        guard(log_handler)
    if args.command == "emulator":
        return cmd_emulator(args)
    if args.command == "doctor":
        return doctor.run(args)
    session = None
    try:
        session = _Session(args)
        handler = {
            "index": cmd_index,
            "search": cmd_search,
            "embed": cmd_embed,
            "migrate": cmd_migrate,
            "jobs": batch_cli.cmd_jobs,
        }[args.command]
        return handler(args, session)
    except (Gemb2Error, ValueError) as exc:
        print(f"gemb2 {args.command}: error: {redact_text(str(exc))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; finished items are stored, run again to resume", file=sys.stderr)
        return 130
    finally:
        if session is not None:
            session.close()


if __name__ == "__main__":
    sys.exit(main())

"""``gemb2 index --batch-mode`` and ``gemb2 jobs``: Batch Mode from the command line.

Submitting plans files exactly as ``gemb2 index`` does (the same walk, split, record
ids and metadata, by running the indexer itself with a planner in the embedder's
place), then hands the pieces to ``gemb2.batch``. Collecting stores the vectors with
the ids, metadata, documents and uris online indexing would have written.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from gemb2.cli.store import add_write_limit_arguments

if TYPE_CHECKING:
    from gemb2.batch.embedder import BatchEmbedder
    from gemb2.batch.records import JobRecord
    from gemb2.batch.store import JobStore
    from gemb2.engine.embedder import Embedder, OnBatch
    from gemb2.inputs.media import Item
    from gemb2.stores.limits import ChromaWriteLimits

STORE_FILE = "batch-jobs.sqlite"


def add_arguments_index(parser: argparse.ArgumentParser) -> None:
    """``--batch-mode`` and its options on ``gemb2 index``."""
    g = parser.add_argument_group("Batch Mode (about half price, results within 24 h)")
    g.add_argument(
        "--batch-mode",
        action="store_true",
        help="submit a Batch Mode job instead of embedding now; store the results later "
        "with `gemb2 jobs collect ID`",
    )
    g.add_argument(
        "--batch-media",
        choices=("online", "batch"),
        default="online",
        help="media items: embed online now (default: whether Batch Mode accepts media is "
        "undocumented) or put them in the job (any it refuses are embedded online on collect)",
    )
    g.add_argument(
        "--batch-input",
        choices=("auto", "inline", "file"),
        default="auto",
        help="inline requests (small jobs) or a JSONL file through the Files API (default: auto)",
    )


def add_jobs_parser(subparsers: Any) -> None:
    """``gemb2 jobs`` (list with states) and ``gemb2 jobs collect ID``."""
    p = subparsers.add_parser("jobs", help="list Batch Mode jobs; collect finished ones")
    _job_options(p, suppress=False)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument(
        "--no-refresh", action="store_true", help="show the last known states, ask nobody"
    )
    sub = p.add_subparsers(dest="jobs_command")
    c = sub.add_parser("collect", help="store a finished job's vectors in its collection")
    c.add_argument("job", help="job id, e.g. batches/abc123 (the batches/ prefix is optional)")
    c.add_argument("--wait", action="store_true", help="poll until the job has finished")
    c.add_argument("--poll-interval", type=float, default=30.0, help="seconds between polls")
    c.add_argument("--timeout", type=float, help="give up waiting after this many seconds")
    c.add_argument(
        "--no-fallback",
        action="store_true",
        help="do not embed online the media items Batch Mode did not accept",
    )
    c.add_argument("--collection", help="store into this collection instead of the job's")
    _job_options(c, suppress=True)
    add_write_limit_arguments(c)


def _job_options(p: argparse.ArgumentParser, *, suppress: bool) -> None:
    """The same options on ``jobs`` and ``jobs collect``, so either place works (the
    subcommand's copies leave unset values to the parent's defaults)."""

    def default(value: Any) -> Any:
        return argparse.SUPPRESS if suppress else value

    p.add_argument(
        "--db",
        type=Path,
        default=default(Path("gemb2-db")),
        help="Chroma directory (holds the jobs)",
    )
    p.add_argument("--chroma-url", default=default(None), help="a Chroma server URL")
    p.add_argument("--base-url", default=default(None), help="API endpoint")
    p.add_argument("-q", "--quiet", action="store_true", default=default(False), help="less output")


# --- submit ----------------------------------------------------------------------------------


class _Planner:
    """Stands in for the Embedder inside ``index_paths``: media (under ``media="online"``)
    are embedded and stored now through the indexer's own callback; everything else is
    kept, with its record id, for one Batch Mode submission."""

    def __init__(
        self, embedder: Embedder, batch: BatchEmbedder, collection: Any, context: dict[str, Any]
    ) -> None:
        self._embedder = embedder
        self._batch = batch
        self._collection = collection
        self._context = context
        self.pending: list[tuple[str, Item]] = []
        # what each pending key's vector is stored as: its record, and those of any
        # identical items (copies of a file), which are submitted once and share it
        self.payloads: dict[str, dict[str, Any]] = {}
        self._first: dict[str, str] = {}  # content fingerprint -> the pending key sent
        self.copies = 0
        self.already_pending = 0
        self.already_stored = 0
        self.online = 0

    def __getattr__(self, name: str) -> Any:  # settings, model, dimensions, prepare, usage
        return getattr(self._embedder, name)

    def embed(
        self,
        items: list[Item],
        *,
        role: str = "document",
        progress: bool = False,
        on_batch: OnBatch | None = None,
        **kwargs: Any,
    ) -> list[list[float]]:
        from gemb2.ingest.indexer import record_id
        from gemb2.ingest.loading import source_path

        e = self._embedder
        ids = [
            record_id(
                source_path(it.metadata),
                str(it.metadata["file_hash"]),
                e.model,
                e.dimensions,
                int(it.metadata["piece"]),
            )
            for it in items
        ]
        now = [i for i, it in enumerate(items) if not self._batch.accepts(it)]
        if now:

            def land(indices: list[int], vectors: list[list[float]]) -> None:
                if on_batch:
                    on_batch([now[i] for i in indices], vectors)

            e.embed([items[i] for i in now], role=cast(Any, role), progress=progress, on_batch=land)
            self.online += len(now)
        skip = set(now)
        later = [i for i in range(len(items)) if i not in skip]
        if not later:
            return []
        waiting = self._batch.store.pending_keys((ids[i] for i in later), context=self._context)
        stored = set(self._collection.get(ids=[ids[i] for i in later], include=[])["ids"])
        for i in later:
            if ids[i] in waiting:
                self.already_pending += 1
            elif ids[i] in stored:
                self.already_stored += 1
            else:
                self._add(ids[i], items[i])
        return []

    def _add(self, key: str, item: Item) -> None:
        """Pend an item, or add its record to the identical item already pending."""
        content = item.fingerprint()
        first = self._first.get(content)
        if first is not None:
            copies = self.payloads[first].setdefault("copies", [])
            copies.append({"id": key, **record(item)})
            self.copies += 1
            return
        self._first[content] = key
        self.pending.append((key, item))
        self.payloads[key] = record(item)


def record(item: Item) -> dict[str, Any]:
    """What a record holds besides its vector, as ``index_paths`` writes it."""
    from gemb2.ingest.pieces import describe

    return {
        "metadata": dict(item.metadata),
        "document": describe(item),
        "uri": str(item.metadata["source"]),
    }


def store_records(
    collection: Any,
    keys: list[str],
    vectors: list[list[float]],
    payloads: Iterable[Any],
    limits: ChromaWriteLimits | None = None,
) -> None:
    """Upsert records within the store's write limits (``ChromaWriter``); a payload's
    ``copies`` (the records of identical items, submitted once) are stored with the same
    vector."""
    from gemb2.stores.writer import ChromaWriter

    rows: list[Any] = []
    all_keys, all_vectors = [], []
    for key, vector, payload in zip(keys, vectors, payloads, strict=True):
        for k, p in ((key, payload), *((c["id"], c) for c in _copies(payload))):
            all_keys.append(k)
            all_vectors.append(vector)
            rows.append(p)
    ChromaWriter(collection, limits).upsert(
        all_keys,
        all_vectors,
        metadatas=[p["metadata"] for p in rows],
        documents=[p["document"] for p in rows],
        uris=[p["uri"] for p in rows],
    )


def _copies(payload: Any) -> list[dict[str, Any]]:
    return list(payload.get("copies") or []) if isinstance(payload, dict) else []


def submit_index(args: argparse.Namespace, session: Any) -> int:
    """Plan the files as ``gemb2 index`` would and submit the pieces to Batch Mode."""
    from gemb2.batch.embedder import BatchEmbedder
    from gemb2.batch.store import JobStore
    from gemb2.cli.store import _client, _collection, write_limits
    from gemb2.engine.cache import VectorCache
    from gemb2.errors import InputError
    from gemb2.ingest.indexer import index_paths

    if getattr(args, "rerank_dims", None):
        raise InputError("--batch-mode cannot be combined with --rerank-dims yet")
    limits = write_limits(args)
    client = _client(args)
    collection, ef = _collection(
        client, args.collection, session, model=args.model, dimensions=args.dimensions
    )
    embedder: Embedder = ef.embedder
    embedder.cache = VectorCache(Path(args.db) / "vector-cache.sqlite")
    store = JobStore(Path(args.db) / STORE_FILE)
    batch = BatchEmbedder(embedder, store, media=args.batch_media)
    context = {
        "collection": args.collection,
        "chroma_url": args.chroma_url,
        "db": str(Path(args.db).resolve()),
    }
    planner = _Planner(embedder, batch, collection, context)

    def on_skip(source: str, reason: str) -> None:
        print(f"skipped {source}: {reason}", file=sys.stderr)

    report = index_paths(
        args.paths,
        collection,
        cast("Embedder", planner),
        progress=not args.quiet,
        on_skip=on_skip,
        write_limits=limits,
    )
    online_stored = 0  # cache hits, stored by on_online

    payloads = planner.payloads

    def on_online(keys: list[str], vectors: list[list[float]]) -> None:
        nonlocal online_stored
        store_records(collection, keys, vectors, [payloads[k] for k in keys], limits)
        online_stored += len(keys) + sum(len(_copies(payloads[k])) for k in keys)

    sub = batch.submit(
        [it for _, it in planner.pending],
        keys=[rid for rid, _ in planner.pending],
        payloads=[payloads[rid] for rid, _ in planner.pending],
        mode=args.batch_input,
        context=context,
        on_online=on_online,
    )
    print(
        f"planned {report.files_indexed} files: {sum(j.count for j in sub.jobs)} items for "
        f"Batch Mode, {planner.online + online_stored} stored now "
        f"({planner.online} media embedded online, {sub.cached} from cache); "
        f"{report.files_unchanged} unchanged, {len(report.skipped)} skipped, "
        f"{planner.already_pending} already waiting in a job, "
        f"{planner.already_stored} already stored, "
        f"{planner.copies} copies of identical items (submitted once)"
    )
    if sub.refused_media:
        print(
            f"Batch Mode refused the media items ({sub.refused_media}); "
            f"{len(sub.online_keys)} embedded and stored online instead"
        )
    if not sub.jobs:
        print("nothing to submit")
        return 0
    for job in sub.jobs:
        print(
            f"submitted {job.name} ({job.mode}, {job.count} items) "
            f"for collection {args.collection!r}: {job.short_state}"
        )
    print("estimated cost of the submitted items, online vs Batch Mode:")
    for line in sub.estimate.table():
        print(line)
    if planner.online:
        print(f"media embedded online now (--batch-media online): {embedder.usage.cost_line()}")
    if session.emulator is not None:
        # the private emulator ends with this process: finish the job now
        print("the offline emulator's jobs end with this process: waiting to collect now")
        code = 0
        for job in sub.jobs:
            batch.wait(job.name, poll_interval=0.2)
            code = max(
                code, _collect_into(batch, job, collection, args, fallback=True, limits=limits)
            )
        return code
    db = f" --db {args.db}" if str(args.db) != "gemb2-db" else ""
    for job in sub.jobs:
        print(f"collect when it has finished: gemb2 jobs collect {job.name}{db}")
    return 0


# --- jobs ------------------------------------------------------------------------------------


def cmd_jobs(args: argparse.Namespace, session: Any) -> int:
    """List the jobs with their states, or collect one."""
    from gemb2.batch.store import JobStore

    path = Path(args.db) / STORE_FILE
    if not path.is_file():
        if getattr(args, "jobs_command", None) == "collect":
            from gemb2.errors import InputError

            raise InputError(f"no batch jobs recorded in {args.db}; pass the --db used to submit")
        print(f"no batch jobs recorded in {args.db}")
        return 0
    store = JobStore(path)
    try:
        if getattr(args, "jobs_command", None) == "collect":
            return _collect(args, session, store)
        return _list(args, session, store)
    finally:
        store.close()


def _list(args: argparse.Namespace, session: Any, store: JobStore) -> int:
    from gemb2.batch.embedder import BatchEmbedder
    from gemb2.batch.records import money
    from gemb2.engine.embedder import Embedder
    from gemb2.errors import Gemb2Error

    jobs = store.jobs()
    refresh = not args.no_refresh and session.emulator is None
    if not refresh and not args.no_refresh:
        print("(no API key: showing the last known states)", file=sys.stderr)
    embedders: dict[tuple[str, int], BatchEmbedder] = {}
    try:
        for i, job in enumerate(jobs):
            if not refresh or job.done:
                continue
            key = (job.model, job.dimensions)
            if key not in embedders:
                emb = Embedder(**session.settings(model=job.model, dimensions=job.dimensions))
                embedders[key] = BatchEmbedder(emb, store)
            try:
                jobs[i] = embedders[key].refresh(job.name)
            except Gemb2Error as exc:
                print(f"cannot refresh {job.name}: {exc}", file=sys.stderr)
    finally:
        for b in embedders.values():
            b.embedder.close()
    if args.json:
        print(json.dumps([_job_json(j) for j in jobs], indent=2))
        return 0
    if not jobs:
        print("no batch jobs")
        return 0
    print(
        f"{'JOB':<28} {'STATE':<10} {'ITEMS':>6} {'INPUT':<6} {'COLLECTION':<14} "
        f"{'SUBMITTED':<16} {'COLLECTED':<16} {'ONLINE':>10} {'BATCH':>10}"
    )
    for j in jobs:
        collected = _when(j.collected) if j.collected else "-"
        print(
            f"{j.name:<28} {j.short_state:<10} {j.count:>6} {j.mode:<6} "
            f"{j.context.get('collection', '-')!s:<14} {_when(j.created):<16} "
            f"{collected:<16} {money(j.cost_online):>10} {money(j.cost_batch):>10}"
        )
    return 0


def _collect(args: argparse.Namespace, session: Any, store: JobStore) -> int:
    from gemb2.batch.embedder import BatchEmbedder
    from gemb2.batch.records import JobPendingError
    from gemb2.cli.store import _client, _collection, write_limits
    from gemb2.engine.cache import VectorCache

    job = store.get(args.job)
    name = args.collection or job.context.get("collection") or "gemb2"
    args.chroma_url = args.chroma_url or job.context.get("chroma_url")
    limits = write_limits(args)
    client = _client(args)
    collection, ef = _collection(client, name, session, model=job.model, dimensions=job.dimensions)
    ef.embedder.cache = VectorCache(Path(args.db) / "vector-cache.sqlite")
    batch = BatchEmbedder(ef.embedder, store)
    if args.wait:

        def on_poll(r: JobRecord) -> None:
            if not args.quiet:
                print(f"{r.name}: {r.short_state}", file=sys.stderr)

        try:
            job = batch.wait(
                job.name, poll_interval=args.poll_interval, timeout=args.timeout, on_poll=on_poll
            )
        except JobPendingError as exc:
            print(f"gemb2 jobs collect: {exc}", file=sys.stderr)
            return 1
    try:
        return _collect_into(
            batch, job, collection, args, fallback=not args.no_fallback, limits=limits
        )
    except JobPendingError as exc:
        print(f"gemb2 jobs collect: {exc}; or pass --wait", file=sys.stderr)
        return 1


def _collect_into(
    batch: BatchEmbedder,
    job: JobRecord,
    collection: Any,
    args: argparse.Namespace,
    *,
    fallback: bool,
    limits: ChromaWriteLimits | None = None,
) -> int:
    """Store a finished job's vectors; report failed and fallen-back items. 1 if any failed."""
    from gemb2.batch.records import money

    t0 = time.monotonic()
    result = batch.collect(job.name, fallback_online=fallback)
    store_records(collection, result.keys, result.vectors, result.payloads, limits)
    stored = len(result.keys) + sum(len(_copies(p)) for p in result.payloads)
    name = getattr(collection, "name", "?")
    for f in result.fallback:
        print(
            f"embedded online {_where(f.payload)} [{f.key}]: Batch Mode did not accept it "
            f"({f.message})",
            file=sys.stderr,
        )
    for f in result.failures:
        code = f" ({f.code})" if f.code is not None else ""
        print(f"failed {_where(f.payload)} [{f.key}]{code}: {f.message}", file=sys.stderr)
    print(
        f"collected {job.name}: stored {stored} items into {name!r} "
        f"in {time.monotonic() - t0:.1f}s; {len(result.failures)} failed, "
        f"{len(result.fallback)} embedded online instead"
    )
    print(
        f"Batch Mode est. {money(result.job.cost_batch)} "
        f"(online would be {money(result.job.cost_online)})"
    )
    if result.failures:
        print(
            "run the same `gemb2 index --batch-mode` again to resubmit the failed items",
            file=sys.stderr,
        )
        return 1
    return 0


def _where(payload: Any) -> str:
    if not isinstance(payload, dict):
        return "an item"
    meta = payload.get("metadata") or {}
    where = str(meta.get("source", "an item"))
    if meta.get("pieces", 1) != 1:
        where += f" piece {meta.get('piece')}"
    return where


def _when(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(t))


def _job_json(j: JobRecord) -> dict[str, Any]:
    return {
        "name": j.name,
        "state": j.short_state,
        "items": j.count,
        "input": j.mode,
        "model": j.model,
        "dimensions": j.dimensions,
        "collection": j.context.get("collection"),
        "submitted": j.created,
        "collected": j.collected,
        "stored": j.stored,
        "failed": j.failed,
        "estimated_cost_online": round(j.cost_online, 6),
        "estimated_cost_batch": round(j.cost_batch, 6),
    }

"""Benchmarks: gemb2 against the ceiling and the frameworks' own Google integrations.

    .venv/bin/python benchmarks/run.py            # everything, about 25 min on 2 cores
    .venv/bin/python benchmarks/run.py --quick    # smaller sizes, a few minutes

One run measures every row side by side against one local emulator (started here, on
127.0.0.1, with a latency model and a server-side rate limit) and writes
``benchmarks/results/benchmarks.{md,json}``. Each row runs in its own process: gemb2
rows in this venv, the other integrations in ``benchmarks/.venv-anchors`` (created
from ``requirements-anchors.txt`` on first use: llama-index-embeddings-google-genai
pins google-genai below 3, which the project's venv must not be downgraded to).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import adaptive  # noqa: E402
import corpus  # noqa: E402
import media_scale  # noqa: E402
import quota  # noqa: E402
import report  # noqa: E402

from gemb2.testing.emulator import Emulator, EmulatorConfig  # noqa: E402

ANCHOR_VENV = HERE / ".venv-anchors"
DATA = HERE / ".data"
RESULTS = HERE / "results"
WORKER = HERE / "worker.py"
# never hand a real key to a worker: every request goes to the emulator anyway
KEY_VARS = ("GOOGLE_API_KEY", "GEMINI_API_KEY", "GOOGLE_GENAI_USE_VERTEXAI")
DUMMY_KEY = "emulator-not-a-key"
# scratch space of this run's workers (Chroma databases, caches), made and removed by main()
WORK = {"dir": tempfile.gettempdir()}


@dataclass
class Row:
    """One line of a table: who, in which process, with which job."""

    label: str
    job: str
    anchor: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


TEXT_ROWS = [
    Row("gemb2 core `Embedder.embed`", "core_text"),
    Row("gemb2 core `Embedder.embed`, `max_concurrency=8`", "core_text", extra={"concurrency": 8}),
    Row("gemb2 LangChain `GeminiEmbeddings.embed_documents`", "langchain_text"),
    Row("gemb2 LlamaIndex `IngestionPipeline.run`", "llamaindex_text"),
    Row("gemb2 LlamaIndex `IngestionPipeline.arun`", "llamaindex_text", extra={"async": True}),
    Row("gemb2 Haystack `GeminiDocumentEmbedder`", "haystack_text"),
    Row("gemb2 Chroma `GeminiEmbeddingFunction`", "chroma_text"),
    Row(
        "langchain-google-genai `GoogleGenerativeAIEmbeddings`",
        "anchor_langchain_text",
        anchor=True,
    ),
    Row("llama-index-embeddings-google-genai `.run`", "anchor_llamaindex_text", anchor=True),
    Row(
        "llama-index-embeddings-google-genai `.arun`",
        "anchor_llamaindex_text",
        anchor=True,
        extra={"async": True},
    ),
    Row("google-genai-haystack `GoogleGenAIDocumentEmbedder`", "anchor_haystack_text", anchor=True),
    Row("chromadb `GoogleGeminiEmbeddingFunction`", "anchor_chroma_text"),
    Row("reference: plain google-genai loop (sequential)", "bare_text"),
]
MEDIA_ROWS = [
    Row("gemb2 core `Embedder.embed`", "core_media"),
    Row("gemb2 LangChain `GeminiEmbeddings.embed_image`", "langchain_media"),
    Row("gemb2 LlamaIndex `IngestionPipeline.run`", "llamaindex_media"),
    Row("gemb2 Haystack `GeminiDocumentEmbedder`", "haystack_media"),
    Row("gemb2 Chroma `GeminiEmbeddingFunction` + loader", "chroma_media"),
    Row(
        "langchain-google-genai `GoogleGenerativeAIEmbeddings`",
        "anchor_langchain_media",
        anchor=True,
    ),
    Row("llama-index-embeddings-google-genai", "anchor_llamaindex_media", anchor=True),
    Row(
        "google-genai-haystack `GoogleGenAIMultimodalDocumentEmbedder`",
        "anchor_haystack_media",
        anchor=True,
    ),
    Row("chromadb `GoogleGeminiEmbeddingFunction`", "anchor_chroma_media"),
    Row("reference: plain google-genai loop (sequential)", "bare_media"),
]
RAY_TEXT_ROWS = [
    Row("gemb2 core `Embedder.embed` (one process)", "core_text"),
    Row("gemb2 core `Embedder.embed`, `max_concurrency=8`", "core_text", extra={"concurrency": 8}),
    Row("gemb2.ray `EmbedBatch`, 2 actors x `max_concurrency=4`", "ray_text"),
]
RAY_MEDIA_ROWS = [
    Row("gemb2 core `Embedder.embed` (one process)", "core_media"),
    Row("gemb2.ray `EmbedBatch`, 2 actors x `max_concurrency=4`", "ray_media"),
]
OTHER = ("langchain-google-genai", "llama-index", "google-genai-haystack", "chromadb")


def is_other(label: str) -> bool:
    """Rows of the frameworks' own Google integrations (chromadb's runs in our venv)."""
    return label.startswith(OTHER)


# --------------------------------------------------------------------------- environment


def anchor_python(log: list[str]) -> Path | None:
    """The anchors' interpreter, creating their venv from PyPI on first use."""
    py = ANCHOR_VENV / "bin" / "python"
    stamp = ANCHOR_VENV / ".installed"
    req = HERE / "requirements-anchors.txt"
    if py.exists() and stamp.exists() and stamp.read_text() == req.read_text():
        return py
    print("creating benchmarks/.venv-anchors (the other integrations) ...", flush=True)
    try:
        subprocess.run([sys.executable, "-m", "venv", str(ANCHOR_VENV)], check=True)
        subprocess.run(
            [str(py), "-m", "pip", "install", "-q", "-r", str(req)],
            check=True,
            stdout=subprocess.DEVNULL,
        )
    except (OSError, subprocess.CalledProcessError) as exc:
        log.append(f"could not create the anchors' venv: {exc}")
        return None
    stamp.write_text(req.read_text())
    return py


def worker_env(base_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in KEY_VARS}
    env.update(
        GOOGLE_API_KEY=DUMMY_KEY,
        GEMINI_API_KEY=DUMMY_KEY,
        GOOGLE_GEMINI_BASE_URL=base_url,  # for integrations with no base-URL option
        ANONYMIZED_TELEMETRY="False",
        HAYSTACK_TELEMETRY_ENABLED="False",
        TQDM_DISABLE="1",
        PYTHONWARNINGS="ignore",
    )
    return env


def run_job(
    python: Path | None,
    job: dict[str, Any],
    emu: Emulator,
    timeout: float = 900,
    script: Path = WORKER,
) -> dict[str, Any]:
    """Run one job in a fresh process (``script``, worker.py by default); add what the
    emulator saw while it ran."""
    if python is None:
        return {"status": "failed", "note": "the anchors' venv could not be created"}
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump({"tmp": WORK["dir"], **job, "base_url": emu.base_url}, f)
    emu.reset_stats()
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(
            [str(python), str(script), f.name],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=worker_env(emu.base_url),
        )
        out = proc.stdout
    except subprocess.TimeoutExpired as exc:
        out = f'RESULT {{"status": "failed", "note": "timed out after {exc.timeout:.0f} s"}}'
        proc = None
    finally:
        os.unlink(f.name)
    lines = [ln for ln in out.splitlines() if ln.startswith("RESULT ")]
    if lines:
        result: dict[str, Any] = json.loads(lines[-1][len("RESULT ") :])
    else:
        err = (proc.stderr if proc is not None else "")[-400:]
        result = {"status": "failed", "note": f"worker crashed: {err}"}
    stats = emu.stats
    result["calls"] = stats.requests
    result["emulator_items"] = stats.items
    result["faults"] = dict(stats.faults)
    result["process_s"] = time.perf_counter() - t0
    return result


# --------------------------------------------------------------------------- ceilings


def network_ceiling(items: int, batch: int, conc: int, cfg: EmulatorConfig) -> dict[str, Any]:
    """The fastest any client can go against this emulator: full batches, ``conc`` in
    flight, and no more than the rate limit's window admits (exact for its limiter)."""
    calls = math.ceil(items / batch)
    per_call = cfg.latency_per_request + batch * cfg.latency_per_item
    t_conc = math.ceil(calls / conc) * per_call
    t_rate = 0.0
    if cfg.rate_limit_rpm:
        cap = max(1, math.floor(cfg.rate_limit_rpm))
        window = 60.0 * cap / cfg.rate_limit_rpm
        t_rate = ((calls - 1) // cap) * window + per_call
    t = max(t_conc, t_rate)
    return {
        "calls": calls,
        "seconds": t,
        "items_per_s": items / t,
        "steady_items_per_s": min(
            conc * batch / per_call, (cfg.rate_limit_rpm or math.inf) * batch / 60.0
        ),
        "binding": "rate limit" if t_rate > t_conc else "concurrency x batch / latency",
    }


# --------------------------------------------------------------------------- cases


def ingestion(
    rows: Sequence[Row],
    data: dict[str, Any],
    n: int,
    args: argparse.Namespace,
    emu: Emulator,
    anchors: Path | None,
) -> dict[str, Any]:
    # The emulator builds its pool of directions on first use (~0.3 s), caches each word's
    # place in it, and decodes each media file once: warm it with one untimed gemb2 pass
    # over the same inputs, so the first row does not pay for every row after it.
    warm = "core_media" if any(r.job == "bare_media" for r in rows) else "core_text"
    job = {"job": warm, "dims": args.dims, "concurrency": args.concurrency, **data}
    run_job(Path(sys.executable), job, emu)
    tries: list[list[dict[str, Any]]] = [[] for _ in rows]
    for round_ in range(args.rounds):  # rounds interleave: a busy moment hits one try of many
        for i, row in enumerate(rows):
            if tries[i] and tries[i][0].get("status") == "cannot":
                continue  # nothing to time again
            python = anchors if row.anchor else Path(sys.executable)
            job = {
                "job": row.job,
                "dims": args.dims,
                "concurrency": args.concurrency,
                "rpm": args.rpm,
                **data,
                **row.extra,
            }
            res = run_job(python, job, emu)
            if res.get("wall_s"):
                res["items_per_s"] = res["items"] / res["wall_s"]
            print(f"  [{round_ + 1}] {row.label}: {report.brief(res)}", flush=True)
            tries[i].append(res)
    out = []
    for row, runs in zip(rows, tries, strict=True):
        ok = [r for r in runs if r.get("status") == "ok" and r.get("items_per_s")]
        best = dict(max(ok, key=lambda r: r["items_per_s"]) if ok else runs[-1])
        best["label"], best["job"] = row.label, row.job
        best["tries_items_per_s"] = [r.get("items_per_s") for r in runs]
        best["tries_status"] = [r.get("status") for r in runs]
        out.append(best)
    ceiling = network_ceiling(n, 100, args.concurrency, emu.config)
    bare = next((r for r in out if r["label"].startswith("reference")), None)
    host = None
    if bare and bare.get("cpu_s"):
        host = bare["items"] / bare["cpu_s"]  # one core: the SDK parses under the GIL
    return {"items": n, "rows": out, "ceiling": ceiling, "cpu_ceiling_items_per_s": host}


def overhead(texts: Path, args: argparse.Namespace, emu: Emulator) -> dict[str, Any]:
    emu.configure(latency_per_request=0.0, latency_per_item=0.0, rate_limit_rpm=None)
    try:
        job = {"job": "overhead", "texts": str(texts), "dims": args.dims, "repeat": args.repeat}
        return run_job(Path(sys.executable), job, emu)
    finally:
        configure_latency(emu, args)


def configure_latency(emu: Emulator, args: argparse.Namespace) -> None:
    emu.configure(
        latency_per_request=args.latency,
        latency_per_item=args.latency_per_item,
        rate_limit_rpm=args.rate_limit,
    )


def run_cases(
    cases: set[str],
    args: argparse.Namespace,
    emu: Emulator,
    media: list[Path],
    texts_json: Path,
    anchors: Path | None,
    out: dict[str, Any],
) -> None:
    """Every selected case, in order, against the one emulator."""
    py = Path(sys.executable)
    if "text" in cases:
        print(f"ingestion: {args.texts} texts", flush=True)
        out["text"] = ingestion(
            TEXT_ROWS, {"texts": str(texts_json)}, args.texts, args, emu, anchors
        )
    if "media" in cases:
        print(f"ingestion: {len(media)} media items", flush=True)
        out["media"] = ingestion(
            MEDIA_ROWS, {"media": [str(m) for m in media]}, len(media), args, emu, anchors
        )
    if "media-scale" in cases:
        print(f"media at scale: {args.media_scale} files", flush=True)
        out["media-scale"] = media_scale.run(args, emu, DATA, worker_env(emu.base_url))
    if "ray" in cases:
        print(f"Ray Data: {args.texts} texts, {len(media)} media items", flush=True)
        out["ray_text"] = ingestion(
            RAY_TEXT_ROWS, {"texts": str(texts_json)}, args.texts, args, emu, anchors
        )
        out["ray_media"] = ingestion(
            RAY_MEDIA_ROWS, {"media": [str(m) for m in media]}, len(media), args, emu, anchors
        )
    if "overhead" in cases:
        print("client overhead at zero latency", flush=True)
        out["overhead"] = overhead(texts_json, args, emu)
    if "reindex" in cases:
        print("re-index of an unchanged corpus", flush=True)
        notes = corpus.text_files(
            DATA, f"reindex_texts_{args.reindex_texts}", args.reindex_texts, 3
        )
        job = {
            "job": "reindex",
            "dims": args.dims,
            "concurrency": args.concurrency,
            "rpm": args.rpm,
            "paths": [str(media[0].parent), str(notes)],
        }
        out["reindex"] = run_job(py, job, emu)
    if "memory" in cases:
        print(f"memory: a {args.video_seconds} s video and {args.memory_texts} texts", flush=True)
        video = corpus.long_video(DATA, args.video_seconds)
        notes = corpus.text_files(DATA, f"memory_texts_{args.memory_texts}", args.memory_texts, 9)
        common = {"job": "memory", "dims": args.dims, "rpm": args.rpm, "video": str(video)}
        default = {**common, "concurrency": args.concurrency, "texts_dir": str(notes)}
        out["memory"] = run_job(py, default, emu)
        largest = out["memory"].get("largest_segment_bytes")
        if largest:  # the same video with one segment per call, one call at a time
            bounded = {**common, "concurrency": 1, "max_inline_bytes": int(largest * 1.5)}
            out["memory_bounded"] = run_job(py, bounded, emu)
    if "quota" in cases:
        print(f"one quota, {quota.PROCESSES} processes: {args.quota_rpm:g} rpm", flush=True)
        out["quota"] = quota.run(args, emu, DATA, corpus.text_files, worker_env(emu.base_url))
        configure_latency(emu, args)
    if "adaptive" in cases:
        n = args.adaptive_texts
        print(
            f"adaptive concurrency: {n} texts at {args.adaptive_rpm:g} rpm and a fifth", flush=True
        )
        listed = DATA / f"texts_{n}.json"
        listed.write_text(json.dumps(corpus.texts(n)))
        out["adaptive"] = adaptive.run(
            args, emu, lambda job, e: run_job(py, job, e, script=HERE / "adaptive.py"), listed
        )
        configure_latency(emu, args)
    if "matryoshka" in cases:
        print(f"matryoshka: {args.matryoshka_items} items", flush=True)
        job = {
            "job": "matryoshka",
            "items": args.matryoshka_items,
            "queries": 200,
            "small_dims": 768,
            "oversample": 4,
        }
        # about 9 min on 2 quiet cores; a machine shared with other work can take 3x that
        out["matryoshka"] = run_job(py, job, emu, timeout=3600)
    if "tricks" in cases:
        print("speed tricks against their plain versions", flush=True)
        out["tricks"] = speed_tricks(texts_json, args, emu)


def speed_tricks(texts: Path, args: argparse.Namespace, emu: Emulator) -> dict[str, Any]:
    """Every speed trick in src/ beside its plain version (benchmarks/tricks.py): the CPU
    ones in one process at zero latency; ``bound_malloc`` by the peak RSS of indexing the
    long video in fresh processes with and without it, alternating."""
    py = Path(sys.executable)
    emu.configure(latency_per_request=0.0, latency_per_item=0.0, rate_limit_rpm=None)
    try:
        job = {"job": "tricks_cpu", "texts": str(texts), "dims": args.dims, "repeat": 9}
        cpu = run_job(py, job, emu)
    finally:
        configure_latency(emu, args)
    video = corpus.long_video(DATA, args.video_seconds)
    common = {"job": "memory", "dims": args.dims, "rpm": args.rpm, "video": str(video)}
    common["concurrency"] = args.concurrency
    malloc: dict[str, list[dict[str, Any]]] = {"trick": [], "plain": []}
    for round_ in range(args.rounds):
        for side in ("trick", "plain"):
            res = run_job(py, {**common, "bound_malloc": side == "trick"}, emu)
            peak = (res.get("peaks_mb") or {}).get("video")
            print(f"  [{round_ + 1}] video, bound_malloc {side}: {peak} MB", flush=True)
            malloc[side].append(res)
    return {"cpu": cpu, "bound_malloc": malloc}


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true", help="small sizes: a smoke run of every case")
    p.add_argument(
        "--cases",
        default="text,media,media-scale,overhead,reindex,memory,quota,adaptive,matryoshka,tricks",
        help="comma-separated subset of text,media,media-scale,overhead,reindex,memory,quota,"
        "adaptive,matryoshka,tricks,ray (ray: not in the default set)",
    )
    p.add_argument("--texts", type=int, help="texts in the ingestion case (5000)")
    p.add_argument("--media", type=int, help="media items in the ingestion case (200)")
    p.add_argument("--media-scale", type=int, help="files in the media-scale case (1500)")
    p.add_argument(
        "--media-scale-before",
        type=Path,
        help="a src/ folder: the media-scale case also runs the engine there, side by side",
    )
    p.add_argument("--dims", type=int, default=768, help="output dimension of every row (768)")
    p.add_argument(
        "--concurrency", type=int, default=4, help="gemb2 max_concurrency (4, its default)"
    )
    p.add_argument("--latency", type=float, default=0.15, help="seconds per call (0.15)")
    p.add_argument("--latency-per-item", type=float, default=0.001, help="s per item (0.001)")
    p.add_argument("--rate-limit", type=float, default=1500, help="server RPM limit (1500)")
    p.add_argument("--rpm", type=float, default=1500, help="gemb2's requests_per_minute (1500)")
    p.add_argument("--repeat", type=int, default=3, help="repeats in the overhead case (3)")
    p.add_argument(
        "--rounds", type=int, default=2, help="tries of each ingestion row, best kept (2)"
    )
    p.add_argument("--video-seconds", type=int, help="length of the memory case's video (600)")
    p.add_argument("--memory-texts", type=int, help="text files in the memory case (10000)")
    p.add_argument("--reindex-texts", type=int, default=300, help="text files beside the media")
    p.add_argument("--matryoshka-items", type=int, help="items in the Matryoshka case (100000)")
    p.add_argument(
        "--quota-rpm", type=float, default=60, help="the quota case's server quota (60 rpm)"
    )
    p.add_argument(
        "--quota-texts", type=int, help="text files per process in the quota case (4000)"
    )
    p.add_argument(
        "--adaptive-rpm",
        type=float,
        default=1500,
        help="the adaptive case's higher server quota; the lower is a fifth (1500)",
    )
    p.add_argument("--adaptive-texts", type=int, help="texts in the adaptive case (20000)")
    p.add_argument(
        "--adaptive-delay",
        choices=("both", "on", "off"),
        default="both",
        help="the adaptive case's rows whose 429s name a retryDelay (on), do not (off), or both",
    )
    p.add_argument("--out", type=Path, default=RESULTS, help="where the tables go")
    args = p.parse_args(argv)
    quick = args.quick
    args.texts = args.texts or (1000 if quick else 5000)
    args.media = args.media or (40 if quick else 200)
    args.media_scale = args.media_scale or (300 if quick else 1500)
    args.video_seconds = args.video_seconds or (120 if quick else 600)
    args.memory_texts = args.memory_texts or (1000 if quick else 10000)
    args.matryoshka_items = args.matryoshka_items or (3000 if quick else 100_000)
    args.quota_texts = args.quota_texts or (1000 if quick else 4000)
    args.adaptive_texts = args.adaptive_texts or (4000 if quick else 20000)
    if quick:
        args.reindex_texts = min(args.reindex_texts, 60)
        args.repeat = min(args.repeat, 2)
        args.rounds = 1
    cases = {c.strip() for c in args.cases.split(",") if c.strip()}

    started = time.perf_counter()
    log: list[str] = []
    DATA.mkdir(exist_ok=True)
    print("preparing inputs (cached in benchmarks/.data) ...", flush=True)
    text_list = corpus.texts(args.texts)
    texts_json = DATA / f"texts_{args.texts}.json"
    texts_json.write_text(json.dumps(text_list))
    media = corpus.media_corpus(DATA, args.media) if cases & {"media", "reindex", "ray"} else []
    anchors = anchor_python(log) if cases & {"text", "media"} else None

    config = EmulatorConfig(
        latency_per_request=args.latency,
        latency_per_item=args.latency_per_item,
        rate_limit_rpm=args.rate_limit,
    )
    results: dict[str, Any] = {
        "command": "python benchmarks/run.py " + " ".join(argv or sys.argv[1:]),
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "settings": {
            k: getattr(args, k)
            for k in (
                "dims",
                "concurrency",
                "latency",
                "latency_per_item",
                "rate_limit",
                "rpm",
                "texts",
                "media",
                "media_scale",
                "video_seconds",
                "memory_texts",
                "matryoshka_items",
                "quota_rpm",
                "quota_texts",
                "adaptive_rpm",
                "adaptive_texts",
                "adaptive_delay",
                "rounds",
                "quick",
            )
        },
        "log": log,
        "cases": {},
    }
    WORK["dir"] = tempfile.mkdtemp(prefix="gemb2-bench-")
    try:
        with Emulator(port=0, config=config) as emu:
            run_cases(cases, args, emu, media, texts_json, anchors, results["cases"])
    finally:
        shutil.rmtree(WORK["dir"], ignore_errors=True)
    results["total_s"] = time.perf_counter() - started
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "benchmarks.json").write_text(json.dumps(results, indent=2) + "\n")
    (args.out / "benchmarks.md").write_text(report.markdown(results))
    print(f"wrote {args.out / 'benchmarks.md'} and benchmarks.json in {results['total_s']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Media at scale: >= 1,500 mixed media files through one ``Embedder.embed`` call.

Measures items/s against the ceiling the engine's own limits allow, peak RSS of the
worker process, and the time to the first call sent (small when reading and checking
overlap the sending; the whole corpus's preparation time when they do not).

``run(...)`` is called by ``run.py --cases media-scale``; ``python media_scale.py JOB.json``
is the worker (one fresh process per row, like worker.py's jobs). A row with ``src`` runs
the engine found there (``PYTHONPATH``): the same run measures the code before a change
beside the code after it.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

# mix of the corpus: share of each kind (PNG, JPEG, PDF, WAV, MP3, MP4)
MIX = (("png", 0.30), ("jpg", 0.20), ("pdf", 0.15), ("wav", 0.15), ("mp3", 0.10), ("mp4", 0.10))


def corpus(root: Path, n: int) -> list[Path]:
    """``n`` files of the mix above, each within the model's per-item limits, made by
    ``gemb2.testing.samples`` and cached under ``root``."""
    import corpus as base

    from gemb2.testing.samples import make_jpeg, make_mp3, make_mp4, make_pdf, make_png, make_wav

    d = root / f"media_scale_{n}"
    manifest = root / f"media_scale_{n}.json"

    def make() -> None:
        d.mkdir(parents=True, exist_ok=True)
        rng = random.Random(23)
        kinds = [k for k, share in MIX for _ in range(round(n * share))]
        kinds = (kinds + ["png"] * n)[:n]
        rng.shuffle(kinds)  # interleaved, as a real folder's files are
        files = []
        for i, kind in enumerate(kinds):
            topic = base.TOPICS[i % len(base.TOPICS)]
            color = rng.choice(list(base.COLORS))
            shape = rng.choice(base.SHAPES)
            desc = f"a {color} {shape}: {topic} (item {i})"
            side = rng.choice((256, 384, 512))
            p = d / f"{i:05d}.{kind}"
            if kind == "png":
                make_png(p, desc, color=base.COLORS[color], shape=shape, size=(side, side))
            elif kind == "jpg":
                make_jpeg(p, desc, color=base.COLORS[color], shape=shape, size=(side, side))
            elif kind == "pdf":
                pages = [f"{topic}: page {k + 1} of item {i}" for k in range(rng.randint(2, 6))]
                make_pdf(p, pages, title=desc)
            elif kind == "wav":
                make_wav(p, rng.uniform(2, 6), description=desc)
            elif kind == "mp3":
                make_mp3(p, rng.uniform(2, 6), description=desc)
            else:
                make_mp4(p, rng.uniform(2, 4), description=desc)
            files.append(p.name)
        manifest.write_text(json.dumps(files))

    base._cached(root / f".media_scale_{n}.done", make)
    return [d / name for name in json.loads(manifest.read_text())]


def ceiling(
    sizes: list[int],
    *,
    batch: int,
    call_bytes: int,
    inflight_bytes: int,
    concurrency: int,
    latency: float,
    per_item: float,
    rpm: float | None,
) -> dict[str, Any]:
    """The fastest the engine's limits allow with zero client CPU: the calls cut as the
    engine cuts them (<= ``batch`` items, <= ``call_bytes``; one bigger item alone), each
    taking ``latency + items * per_item``, started in order while <= ``concurrency`` are in
    flight, their bytes fit ``inflight_bytes`` (or nothing else is in flight), and the
    requests of any 60 s window stay <= ``rpm``. Simulated call by call."""
    calls: list[tuple[int, int]] = []  # (items, bytes)
    items = size = 0
    for s in sizes:
        if items and (items >= batch or size + s > call_bytes):
            calls.append((items, size))
            items = size = 0
        items += 1
        size += s
    if items:
        calls.append((items, size))
    running: list[tuple[float, int]] = []  # (end, bytes)
    starts: list[float] = []
    t = 0.0
    for n_items, n_bytes in calls:
        while True:
            running = [(e, b) for e, b in running if e > t]
            used = sum(b for _, b in running)
            fits = not running or (len(running) < concurrency and used + n_bytes <= inflight_bytes)
            if rpm and len(starts) >= rpm:
                t = max(t, starts[-int(rpm)] + 60.0)
            if fits:
                break
            t = min(e for e, _ in running)
        starts.append(t)
        running.append((t + latency + n_items * per_item, n_bytes))
    end = max((e for e, _ in running), default=0.0)
    return {
        "calls": len(calls),
        "seconds": end,
        "items_per_s": len(sizes) / end if end else 0.0,
        "mean_call_bytes": sum(b for _, b in calls) / max(1, len(calls)),
        "mean_call_items": len(sizes) / max(1, len(calls)),
    }


# --------------------------------------------------------------------------- the worker


class FirstCall:
    """Wraps the Embedder's transport to note when the first call is posted (the SDK
    underneath is untouched: this only forwards)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.first: float | None = None
        self.calls = 0
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def post(self, call: Any) -> Any:
        with self._lock:
            self.calls += 1
            if self.first is None:
                self.first = time.perf_counter()
        return self.inner.post(call)


def job_main(job: dict[str, Any]) -> dict[str, Any]:
    from worker import RssSampler, check, warm

    with RssSampler() as rss:
        import gemb2
        from gemb2 import Embedder

        if job.get("bound_malloc"):  # as `gemb2 index` does before it indexes
            from gemb2.ingest.indexer import bound_malloc

            bound_malloc()

        paths = [Path(p) for p in job["media"]]
        settings: dict[str, Any] = {"max_concurrency": job["concurrency"]}
        if job.get("rpm"):
            settings["requests_per_minute"] = job["rpm"]
        emb = Embedder(base_url=job["base_url"], dimensions=job["dims"], **settings)
        warm(emb)
        probe = FirstCall(emb.transport)
        emb.transport = probe
        rss.enter("baseline")
        time.sleep(0.05)
        rss.enter("embed")
        landed: list[float] = []

        def on_batch(indices: list[int], vectors: list[list[float]]) -> None:
            if not landed:
                landed.append(time.perf_counter())

        c0, t0 = time.process_time(), time.perf_counter()
        vectors = emb.embed(paths, on_batch=on_batch)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        rss.enter("after")
    status, note = check(vectors, len(paths), job["dims"])
    return {
        "status": status,
        "note": note,
        "items": len(paths),
        "wall_s": wall,
        "cpu_s": cpu,
        "items_per_s": len(paths) / wall,
        "first_call_s": (probe.first - t0) if probe.first else None,
        "first_landed_s": (landed[0] - t0) if landed else None,
        "calls": probe.calls,
        "peaks_mb": {k: v / 2**20 for k, v in rss.peaks.items()},
        "engine": str(Path(gemb2.__file__).parent),
        "max_inflight_bytes": emb.settings.max_inflight_bytes,
        "max_call_bytes": emb.settings.max_call_bytes,
    }


# --------------------------------------------------------------------------- the case


def run(args: Any, emu: Any, data: Path, env: dict[str, str]) -> dict[str, Any]:
    """Rows: the engine of this tree, and (``--media-scale-before SRC``) another tree's
    engine, alternating over ``args.rounds``; best try of each kept."""
    paths = corpus(data, args.media_scale)
    sizes = [p.stat().st_size for p in paths]
    from gemb2 import EmbedSettings

    s = EmbedSettings(max_concurrency=args.concurrency)
    cfg = emu.config
    ceil = ceiling(
        sizes,
        batch=s.batch_size,
        call_bytes=s.max_call_bytes,
        inflight_bytes=s.max_inflight_bytes,
        concurrency=s.max_concurrency,
        latency=cfg.latency_per_request,
        per_item=cfg.latency_per_item,
        rpm=min(x for x in (args.rpm, cfg.rate_limit_rpm, float("inf")) if x),
    )
    rows: list[tuple[str, str | None, bool]] = [
        ("this tree", None, False),
        ("this tree + `bound_malloc()`", None, True),
    ]
    if getattr(args, "media_scale_before", None):
        rows.insert(0, ("before", str(args.media_scale_before), False))
    job = {
        "media": [str(p) for p in paths],
        "dims": args.dims,
        "concurrency": args.concurrency,
        "rpm": args.rpm,
        "base_url": emu.base_url,
    }
    one(job, None, env, False)  # warm the emulator: it decodes each file once
    tries: dict[str, list[dict[str, Any]]] = {label: [] for label, _, _ in rows}
    for round_ in range(args.rounds):
        for label, src, bound in rows:
            res = one(job, src, env, bound)
            print(f"  [{round_ + 1}] {label}: {brief(res, ceil)}", flush=True)
            tries[label].append(res)
    # what this machine's CPU allows (client and emulator on the same cores): no latency
    latency, per_item = cfg.latency_per_request, cfg.latency_per_item  # cfg may be live
    emu.configure(latency_per_request=0.0, latency_per_item=0.0)
    try:
        cpu = one(job, None, env, False)
    finally:
        emu.configure(latency_per_request=latency, latency_per_item=per_item)
    print(f"  this tree at zero latency: {brief(cpu, ceil)}", flush=True)
    out = []
    for label, src, _ in rows:
        ok = [r for r in tries[label] if r.get("status") == "ok"]
        best = dict(max(ok, key=lambda r: r["items_per_s"]) if ok else tries[label][-1])
        best["label"], best["src"] = label, src
        best["tries_items_per_s"] = [r.get("items_per_s") for r in tries[label]]
        out.append(best)
    mix = {k: sum(1 for p in paths if p.suffix == f".{k}") for k, _ in MIX}
    return {
        "items": len(paths),
        "bytes": sum(sizes),
        "mix": mix,
        "ceiling": ceil,
        "budget_mb": (s.max_inflight_bytes * 2) / 2**20,
        "rows": out,
        "zero_latency": cpu,
    }


def one(job: dict[str, Any], src: str | None, env: dict[str, str], bound: bool) -> dict[str, Any]:
    job = {**job, "bound_malloc": bound}
    env = dict(env)
    if src:
        env["PYTHONPATH"] = src
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(job, f)
    proc = subprocess.run(
        [sys.executable, __file__, f.name], capture_output=True, text=True, env=env, timeout=900
    )
    Path(f.name).unlink()
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if not lines:
        return {"status": "failed", "note": proc.stderr[-400:]}
    result: dict[str, Any] = json.loads(lines[-1][len("RESULT ") :])
    return result


def brief(res: dict[str, Any], ceil: dict[str, Any]) -> str:
    if res.get("status") != "ok":
        return f"{res.get('status')}: {res.get('note')}"
    pct = 100 * res["items_per_s"] / ceil["items_per_s"]
    return (
        f"{res['items_per_s']:.0f} items/s ({pct:.0f}% of {ceil['items_per_s']:.0f}), "
        f"first call {res['first_call_s']:.2f} s of {res['wall_s']:.2f} s, "
        f"peak RSS {res['peaks_mb'].get('embed', 0):.0f} MB "
        f"(baseline {res['peaks_mb'].get('baseline', 0):.0f} MB)"
    )


def markdown(case: dict[str, Any]) -> list[str]:
    """The case's table, for report.py."""
    c = case["ceiling"]
    out = [
        f"### Media at scale: {case['items']} files ({case['bytes'] / 2**20:.0f} MB; "
        + ", ".join(f"{n} {k}" for k, n in case["mix"].items())
        + ")",
        "",
        f"Ceiling {c['items_per_s']:.0f} items/s: the engine's {c['calls']} calls "
        f"(<= 100 items, <= max_call_bytes; {c['mean_call_items']:.0f} items, "
        f"{c['mean_call_bytes'] / 2**20:.1f} MB on average) scheduled with <= max_concurrency "
        "in flight, <= max_inflight_bytes in flight, <= the quota per 60 s, each taking "
        "latency + items x per-item latency, zero client CPU. Goal: >= 70% of it, peak RSS "
        f"<= byte budgets ({case['budget_mb']:.0f} MB: in flight + read ahead) + 200 MB.",
        "",
        "| engine | items/s | % of ceiling | first call (s) | wall (s) | peak RSS (MB) "
        "| baseline RSS (MB) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in case["rows"]:
        if r.get("status") != "ok":
            out.append(f"| {r['label']} | {r.get('status')}: {r.get('note')} | | | | | |")
            continue
        peaks = r["peaks_mb"]
        out.append(
            f"| {r['label']} | {r['items_per_s']:.0f} | "
            f"{100 * r['items_per_s'] / c['items_per_s']:.0f}% | {r['first_call_s']:.2f} | "
            f"{r['wall_s']:.2f} | {peaks.get('embed', 0):.0f} | {peaks.get('baseline', 0):.0f} |"
        )
    z = case.get("zero_latency") or {}
    if z.get("status") == "ok":
        out += [
            "",
            f"This machine's CPU bound (this tree, emulator at zero latency, client and "
            f"emulator on the same cores): {z['items_per_s']:.0f} items/s, client CPU "
            f"{1000 * z['cpu_s'] / z['items']:.2f} ms per item.",
        ]
    return [*out, ""]


def main(argv: list[str]) -> int:
    job = json.loads(Path(argv[1]).read_text())
    try:
        result = job_main(job)
    except Exception as exc:  # a failing row is a result, not a crash
        result = {"status": "failed", "note": f"{type(exc).__name__}: {exc}"[:500]}
    print("RESULT " + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

"""The "reach the quota by default" case: 20,000 texts, no ``requests_per_minute``,
gemb2's adaptive concurrency against fixed windows, at two server quotas, with and
without a retry delay in the server's 429s.

The emulator's quota is a sliding window of ``WINDOW_S`` seconds holding the quota's
share of a minute (1,500 requests/min: 50 requests per 2 s), so that it binds from the
first seconds as a token bucket would (a 60 s window would let the 200 calls of this
case through in one burst). Measured from the emulator's counters: items/s as a share
of the quota's items/s (quota x 100 items per call / 60); the share of calls answered
429; items the server embedded beyond the corpus (sent twice) and vectors missing.
Before the rows, the same texts with no quota: once to fill the emulator's vector cache,
once more as the run's ceiling (what this machine serves at that latency).

Each row runs in a fresh process (``python adaptive.py JOB.json`` is the worker).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

WINDOW_S = 2.0
BATCH = 100
# (label, settings): gemb2's defaults, then fixed windows
ROWS: list[tuple[str, dict[str, Any]]] = [
    ("gemb2 default (adaptive, up to `max_concurrency=16`)", {}),
    (
        "gemb2 fixed `max_concurrency=4` (`adaptive_concurrency=False`)",
        {"max_concurrency": 4, "adaptive_concurrency": False},
    ),
    (
        "gemb2 fixed `max_concurrency=8` (`adaptive_concurrency=False`)",
        {"max_concurrency": 8, "adaptive_concurrency": False},
    ),
]

CEILING = (
    "gemb2 fixed `max_concurrency=16`",
    {"max_concurrency": 16, "adaptive_concurrency": False},
)


def run(args: Any, emu: Any, run_job: Any, texts: Path) -> dict[str, Any]:
    """Every row at every (quota, retry delay) against ``emu``; the emulator's latency
    model is left as the run set it."""
    rows = []
    load_before = os.getloadavg()
    n = len(json.loads(texts.read_text()))
    delays = {"both": (True, False), "on": (True,), "off": (False,)}[args.adaptive_delay]
    # no quota, at the same latency: the most this machine serves in this run (the client
    # and the emulator share its cores); the run before it fills the emulator's vector
    # cache, so that no row pays for the stand-in's arithmetic (Google's is not on our CPU)
    emu.configure(rate_limit_rpm=None)
    unbound = {"texts": str(texts), "dims": args.dims, "settings": CEILING[1]}
    warm = run_job(unbound, emu)
    ceiling = summarise(run_job(unbound, emu), CEILING[0], args.adaptive_rpm, True, n)
    print(f"  warm-up {warm.get('status')}; no quota: {brief(ceiling)}", flush=True)
    for rpm in (args.adaptive_rpm, args.adaptive_rpm / 5):
        for retry_info in delays:
            for label, settings in ROWS:
                emu.configure(rate_limit_rpm=rpm, rate_limit_window=WINDOW_S, retry_info=retry_info)
                job = {"texts": str(texts), "dims": args.dims, "settings": settings}
                res = run_job(job, emu)
                row = summarise(res, label, rpm, retry_info, n)
                print(
                    f"  {rpm:g} rpm, retryDelay {'on' if retry_info else 'off'}, "
                    f"{label}: {brief(row)}",
                    flush=True,
                )
                rows.append(row)
    emu.configure(rate_limit_window=60.0, retry_info=True)
    return {
        "items": n,
        "window_s": WINDOW_S,
        "rows": rows,
        "ceiling": ceiling,
        "load": [round(x, 2) for x in (*load_before, *os.getloadavg())],
    }


def summarise(
    res: dict[str, Any], label: str, rpm: float, retry_info: bool, n: int
) -> dict[str, Any]:
    refused = int(res.get("faults", {}).get("rate_limit", 0))
    calls = int(res.get("calls", 0))
    ips = n / res["wall_s"] if res.get("wall_s") else None
    quota_ips = rpm * BATCH / 60
    return {
        **res,
        "label": label,
        "rpm": rpm,
        "retry_info": retry_info,
        "items_per_s": ips,
        "pct_of_quota": ips / quota_ips if ips else None,
        "refused_429": refused,
        "pct_429": refused / calls if calls else None,
        "lost": n - int(res.get("vectors", 0)),
        "duplicated": int(res.get("emulator_items", 0)) - n,
    }


def brief(r: dict[str, Any]) -> str:
    if r.get("status") != "ok":
        return f"{r.get('status')}: {r.get('note', '')}"[:160]
    return (
        f"{r['items_per_s']:.0f} items/s ({100 * r['pct_of_quota']:.1f}% of the quota), "
        f"{r['calls']} calls, {r['refused_429']} answered 429 ({100 * r['pct_429']:.1f}%), "
        f"peak {r.get('peak')} in flight, {r['lost']} lost, {r['duplicated']} duplicated, "
        f"first call at {r.get('first_call_s') or 0:.2f} s"
    )


def table(case: dict[str, Any]) -> tuple[list[str], list[tuple[str, str, bool | None]]]:
    lines = [
        f"### Reaching the quota: {case['items']:,} texts, adaptive vs fixed concurrency",
        "",
        f"No `requests_per_minute`: each row learns the quota from the server's answers. The "
        f"emulator's quota is a sliding {case['window_s']:g} s window holding that share of the "
        "requests per minute; its 429s name the time until a slot frees (`retryDelay`), or "
        "no delay at all. % of quota: items/s against quota x 100 items / 60, timed from "
        "`embed`; first call: when the first call went out (every input is checked before "
        "it).",
        "",
        f"Load average (1, 5, 15 min) before the case: {_load(case, 0)}; after: "
        f"{_load(case, 3)} (2 cores: above 2, the rows are CPU-bound).",
        "",
        "| quota (req/min) | 429 names a delay | gemb2 | items/s | % of quota | calls "
        "| answered 429 | peak in flight | first call | lost | duplicated |",
        "|--:|---|---|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    c = case.get("ceiling")
    if c and c.get("status") == "ok":  # older results have no ceiling row
        lines[4:4] = [
            f"The ceiling of this run: with no quota, at the same latency, {c['label']} "
            f"served {c['items_per_s']:,.0f} items/s, {100 * c['pct_of_quota']:.0f}% of the "
            f"{c['rpm']:,.0f} req/min quota (the client and the emulator share 2 cores; a row "
            "reaches the quota only where this is well above 100%).",
            "",
        ]
    goals: list[tuple[str, str, bool | None]] = []
    top = max(r["rpm"] for r in case["rows"])
    for r in case["rows"]:
        head = f"| {r['rpm']:,.0f} | {'yes' if r['retry_info'] else 'no'} | {r['label']} "
        if r.get("status") != "ok":
            lines.append(head + f"| {r.get('status')} | | | | | | | |")
            continue
        lines.append(
            head + f"| {r['items_per_s']:,.0f} | {100 * r['pct_of_quota']:.1f}% | {r['calls']} "
            f"| {r['refused_429']} ({100 * r['pct_429']:.1f}%) | {r.get('peak')} "
            f"| {_seconds(r.get('first_call_s'))} | {r['lost']} | {r['duplicated']} |"
        )
        if r["label"].startswith("gemb2 default") and r["retry_info"]:
            at = f"{r['rpm']:,.0f} req/min"
            goals.append(
                (
                    f"adaptive default, quota {at}: >= 90% of the quota",
                    f"{100 * r['pct_of_quota']:.1f}%",
                    r["pct_of_quota"] >= 0.9,
                )
            )
            if r["rpm"] == top:
                goals.append(
                    (
                        f"adaptive default, quota {at}: <= 2% of calls 429'd",
                        f"{100 * r['pct_429']:.1f}%",
                        r["pct_429"] <= 0.02,
                    )
                )
        if r["label"].startswith("gemb2 default"):
            goals.append(
                (
                    f"adaptive default, {r['rpm']:,.0f} req/min, delay "
                    f"{'named' if r['retry_info'] else 'not named'}: 0 lost or duplicated",
                    f"{r['lost']} / {r['duplicated']}",
                    r["lost"] == 0 and r["duplicated"] == 0,
                )
            )
    return [*lines, ""], goals


def _seconds(s: float | None) -> str:
    return "" if s is None else f"{s:.2f} s"


def _load(case: dict[str, Any], at: int) -> str:
    load = case.get("load")
    return ", ".join(f"{x:.2f}" for x in load[at : at + 3]) if load else "not recorded"


# --------------------------------------------------------------------------- the worker


def worker(job: dict[str, Any]) -> dict[str, Any]:
    """One row: embed the texts with these settings, timed from ``embed`` (checking every
    input before the first call included: ``first_call_s``)."""
    from gemb2 import Embedder, EmbedSettings
    from gemb2.transport.base import Answer, EmbedCall
    from gemb2.transport.genai import GenAITransport, genai_client

    first: list[float] = []

    class Noted(GenAITransport):
        """Notes when the first call is sent."""

        def post(self, call: EmbedCall) -> Answer:
            first.append(time.perf_counter())
            return super().post(call)

    texts = json.loads(Path(job["texts"]).read_text())
    settings = EmbedSettings(base_url=job["base_url"], dimensions=job["dims"], **job["settings"])
    emb = Embedder(settings=settings, transport=Noted(settings))
    _ = genai_client(emb.transport)  # the SDK client is built before the clock starts
    t0 = time.perf_counter()
    vectors = emb.embed(texts)
    wall = time.perf_counter() - t0
    good = sum(1 for v in vectors if len(v) == job["dims"])
    return {
        "status": "ok" if good == len(texts) else "wrong",
        "note": "",
        "items": len(texts),
        "vectors": good,
        "wall_s": wall,
        "first_call_s": min(first) - t0 if first else None,
        "peak": emb.gate.peak,
        "window": round(emb.gate.window, 2),
        "decreases": emb.gate.decreases,
    }


if __name__ == "__main__":
    spec = json.loads(Path(sys.argv[1]).read_text())
    try:
        result = worker(spec)
    except Exception as exc:  # reported as the row's status, not a traceback
        result = {"status": "failed", "note": f"{type(exc).__name__}: {exc}"}
    print("RESULT " + json.dumps(result), flush=True)

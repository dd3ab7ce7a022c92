"""The "one quota, many processes" case: four ``gemb2 index`` processes, each on a quarter
of one corpus, writing to one Chroma server, against one emulator whose quota they share.

Rows: each process pacing alone (``--limiter local``, the quota given to each), and the
same run sharing the quota through a SQLite file (and through Redis, when ``redis-server``
is installed). Measured from the emulator's counters: calls accepted per minute between
the first and the last call, as a share of the quota; the share of calls answered 429; and
from the collection: records lost or stored twice, against the pieces of the corpus.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

PROCESSES = 4


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(check: Any, what: str, proc: subprocess.Popen[bytes], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():
                return
        except Exception:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not start")
        time.sleep(0.2)


class Servers:
    """A Chroma server (the processes' one collection) and, if installed, a Redis server,
    both on 127.0.0.1 and stopped at the end."""

    def __init__(self, work: Path) -> None:
        import httpx

        self.procs: list[subprocess.Popen[bytes]] = []
        chroma = shutil.which("chroma", path=str(Path(sys.executable).parent))
        port = _free_port()
        self.chroma_url = f"http://127.0.0.1:{port}"
        p = self._start(
            [
                str(chroma),
                "run",
                "--path",
                str(work / "chroma"),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            work / "chroma.log",
        )
        _wait(
            lambda: httpx.get(f"{self.chroma_url}/api/v2/heartbeat").status_code == 200,
            "chroma run",
            p,
        )
        self.redis_url: str | None = None
        exe = shutil.which("redis-server")
        if exe:
            rport = _free_port()
            p = self._start(
                [
                    exe,
                    "--port",
                    str(rport),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--dir",
                    str(work),
                ],
                work / "redis.log",
            )
            import redis

            _wait(lambda: redis.Redis(port=rport).ping(), "redis-server", p)
            self.redis_url = f"redis://127.0.0.1:{rport}/0"

    def _start(self, argv: list[str], log: Path) -> subprocess.Popen[bytes]:
        out = log.open("wb")
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
        self.procs.append(proc)
        return proc

    def stop(self) -> None:
        for p in self.procs:
            p.terminate()
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()


def _records(chroma_url: str, collection: str) -> tuple[int, int, int]:
    """(records, distinct sources, the most records of one source) in the collection."""
    from urllib.parse import urlparse

    import chromadb
    from chromadb.config import Settings

    url = urlparse(chroma_url)
    client = chromadb.HttpClient(
        host=url.hostname, port=url.port, settings=Settings(anonymized_telemetry=False)
    )
    got = client.get_collection(collection).get(include=["metadatas"])
    sources: dict[str, int] = {}
    for meta in got["metadatas"] or []:
        src = str((meta or {}).get("source"))
        sources[src] = sources.get(src, 0) + 1
    return len(got["ids"]), len(sources), max(sources.values(), default=0)


def run_row(
    label: str,
    limiter: str,
    folders: list[Path],
    emu: Any,
    env: dict[str, str],
    servers: Servers,
    work: Path,
    rpm: float,
) -> dict[str, Any]:
    collection = f"quota-{sum(1 for p in work.glob('quota-*.log'))}"
    emu.configure(rate_limit_rpm=rpm)  # a fresh window: no calls of an earlier row in it
    emu.reset_stats()
    procs = []
    t0 = time.monotonic()
    for i, folder in enumerate(folders):
        argv = [
            str(Path(sys.executable).with_name("gemb2")),
            "index",
            str(folder),
            "--chroma-url",
            servers.chroma_url,
            "--collection",
            collection,
            "--db",
            str(work / f"{collection}-db-{i}"),  # each its own vector cache
            "--base-url",
            emu.base_url,
            # small vectors: the case measures pacing, and on 2 cores the four clients'
            # decoding and Chroma writes of 768-d vectors can bind before the quota does
            "--dimensions",
            "128",
            "-q",
            "--requests-per-minute",
            f"{rpm:g}",
            "--limiter",
            limiter,
        ]
        log = (work / f"{collection}-{i}.log").open("w")
        procs.append((subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env), log))
    codes = []
    walls = []
    for proc, log in procs:
        codes.append(proc.wait(timeout=3600))
        walls.append(time.monotonic() - t0)
        log.close()
    stats = emu.stats
    arrivals = sorted(stats.arrivals)
    refused = int(stats.faults.get("rate_limit", 0))
    accepted = stats.requests - refused
    span = arrivals[-1] - arrivals[0] if len(arrivals) > 1 else 0.0
    per_minute = accepted * 60 / span if span else None
    records, sources, most = _records(servers.chroma_url, collection)
    expected = sum(len(list(f.iterdir())) for f in folders)
    failed = [i for i, c in enumerate(codes) if c != 0]
    return {
        "label": label,
        "limiter": limiter.split("://")[0],
        "status": "ok" if not failed else f"process {failed[0]} exited {codes[failed[0]]}",
        "requests": stats.requests,
        "accepted": accepted,
        "refused_429": refused,
        "pct_429": refused / stats.requests if stats.requests else None,
        "span_s": span,
        "per_minute": per_minute,
        "pct_of_quota": per_minute / rpm if per_minute else None,
        "wall_s": max(walls),
        "pieces": expected,
        "records": records,
        "lost": expected - sources,
        # every file of the corpus is one piece: a source stored twice is a duplicate
        "duplicated": records - sources,
        "most_of_one_source": most,
    }


def run(args: Any, emu: Any, data: Path, make_texts: Any, env: dict[str, str]) -> dict[str, Any]:
    """Every row of the case, one after another, against ``emu``."""
    per = args.quota_texts
    folders = [make_texts(data, f"quota_{per}_{i}", per, 100 + i) for i in range(PROCESSES)]
    work = Path(tempfile.mkdtemp(prefix="gemb2-quota-"))
    servers = Servers(work)
    rows = []
    try:
        shared = f"sqlite:///{work / 'quota.sqlite'}"
        plan = [
            ("each process alone (`--limiter local`)", "local"),
            ("shared: SQLite file (`--limiter sqlite:///...`)", shared),
        ]
        if servers.redis_url:
            plan.append(("shared: Redis (`--limiter redis://...`)", servers.redis_url))
        for label, limiter in plan:
            row = run_row(label, limiter, folders, emu, env, servers, work, args.quota_rpm)
            rows.append(row)
            print(f"  {label}: {brief(row)}", flush=True)
    finally:
        servers.stop()
        shutil.rmtree(work, ignore_errors=True)
    return {
        "processes": PROCESSES,
        "texts_per_process": per,
        "quota_rpm": args.quota_rpm,
        "rows": rows,
    }


def brief(r: dict[str, Any]) -> str:
    if r["status"] != "ok":
        return r["status"]
    return (
        f"{r['accepted']} calls at {r['per_minute']:.1f}/min ({100 * r['pct_of_quota']:.1f}% of "
        f"the quota), {r['refused_429']} answered 429 ({100 * r['pct_429']:.1f}%), "
        f"{r['records']} records of {r['pieces']} pieces, {r['lost']} lost, "
        f"{r['duplicated']} duplicated, {r['wall_s']:.0f} s"
    )


def table(case: dict[str, Any]) -> tuple[list[str], list[tuple[str, str, bool | None]]]:
    n, per, rpm = case["processes"], case["texts_per_process"], case["quota_rpm"]
    lines = [
        f"### One quota, {n} processes (`gemb2 index` x {n}, {per:,} text files each, "
        "one Chroma server)",
        "",
        f"The emulator's quota: {rpm:g} requests per sliding minute; every process is given "
        f"`--requests-per-minute {rpm:g}` (128-d vectors). Calls per minute are counted "
        "between the first and the last call the emulator saw.",
        "",
        "| limiter | calls | accepted / min | % of quota | answered 429 | records / pieces "
        "| lost | duplicated | wall s |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    goals: list[tuple[str, str, bool | None]] = []
    for r in case["rows"]:
        if r["status"] != "ok":
            lines.append(f"| {r['label']} | {r['status']} | | | | | | | |")
            continue
        lines.append(
            f"| {r['label']} | {r['requests']} | {r['per_minute']:.1f} "
            f"| {100 * r['pct_of_quota']:.1f}% | {r['refused_429']} ({100 * r['pct_429']:.1f}%) "
            f"| {r['records']:,} / {r['pieces']:,} | {r['lost']} | {r['duplicated']} "
            f"| {r['wall_s']:.0f} |"
        )
        if r["limiter"] != "local":
            kind = r["limiter"]
            goals += [
                (
                    f"{n} processes, {kind}: >= 85% of the quota",
                    f"{100 * r['pct_of_quota']:.1f}%",
                    r["pct_of_quota"] >= 0.85,
                ),
                (
                    f"{n} processes, {kind}: <= 2% of calls 429'd",
                    f"{100 * r['pct_429']:.1f}%",
                    r["pct_429"] <= 0.02,
                ),
                (
                    f"{n} processes, {kind}: 0 records lost or duplicated",
                    f"{r['lost']} / {r['duplicated']}",
                    r["lost"] == 0 and r["duplicated"] == 0,
                ),
            ]
    return [*lines, ""], goals

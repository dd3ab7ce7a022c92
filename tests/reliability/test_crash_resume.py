"""Crash and resume: ``gemb2 index`` killed with SIGKILL mid-run (no cleanup of any kind),
then run again. The collection ends with every item once, none missing, none duplicated,
each with the vector a clean run gives; and the rerun pays no call for finished items."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
from rel_helpers import DIMS, dump, forget_clients, make_corpus, persistent, reported_usage

from gemb2 import Embedder
from gemb2.ingest.loading import load_file
from gemb2.testing.emulator import Emulator


def _cli(*argv: str) -> list[str]:
    return [sys.executable, "-m", "gemb2.cli.main", *argv]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("GOOGLE_API_KEY", "GEMINI_API_KEY")}
    env["ANONYMIZED_TELEMETRY"] = "False"
    return env


def _cached(db: Path) -> int:
    """Rows in the vector cache the indexer keeps beside the collection (0 until created)."""
    path = db / "vector-cache.sqlite"
    if not path.exists():
        return 0
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1)
        try:
            return int(con.execute("SELECT COUNT(*) FROM vectors").fetchone()[0])
        finally:
            con.close()
    except sqlite3.Error:  # created but no table yet, or mid-checkpoint
        return 0


def test_sigkill_mid_index_then_rerun_stores_each_item_once_and_pays_only_for_the_rest(
    quiet_emulator: Emulator, tmp_path: Path
) -> None:
    emu = quiet_emulator
    files = make_corpus(tmp_path / "corpus", 794)  # 800 items, embedded 200 per chunk
    total = len(files)
    db = tmp_path / "db"
    argv = _cli(
        "index",
        str(tmp_path / "corpus"),
        "--db",
        str(db),
        "--base-url",
        emu.base_url,
        "--dimensions",
        str(DIMS),
        "-q",
    )
    emu.configure(latency_per_request=0.4)  # slow enough to be caught mid-run

    log = (tmp_path / "first.log").open("wb")
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=_env())
    try:
        deadline = time.monotonic() + 120
        # the first chunk (200 items) is stored before the second is sent: kill once a
        # batch of the second chunk is cached, while the rest is being cached and stored
        while _cached(db) < 300:
            assert proc.poll() is None, (tmp_path / "first.log").read_text()
            assert time.monotonic() < deadline, "the indexer made no progress"
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
        log.close()
    answered_before_kill = emu.stats.items
    assert answered_before_kill < total, "the run finished before it could be killed"

    cached = _cached(db)
    forget_clients()
    stored = persistent(db).get_collection("gemb2").count()
    assert 200 <= stored <= cached <= answered_before_kill < total  # killed mid-run

    emu.configure(latency_per_request=0.0)
    emu.reset_stats()
    forget_clients()
    rerun = subprocess.run(argv, capture_output=True, text=True, env=_env(), timeout=180)
    assert rerun.returncode == 0, rerun.stderr
    # finished items (stored, or cached just before the kill) cost no new call
    assert emu.stats.items == total - cached
    _, _, from_cache = reported_usage(rerun.stdout)
    assert from_cache == cached - stored  # embedded and paid for, killed before stored
    assert f"{stored} unchanged" in rerun.stdout

    forget_clients()
    records = dump(persistent(db).get_collection("gemb2"))
    assert len(records) == total
    pieces = Counter((m["source"], m["piece"]) for _, m in records.values())
    assert max(pieces.values()) == 1  # none duplicated
    assert {s for s, _ in pieces} == {str(f) for f in files}  # none missing

    # and each vector is the one a clean run gives that piece
    items = [it for f in files for it in load_file(f)]
    with Embedder(base_url=emu.base_url, dimensions=DIMS) as embedder:
        want = embedder.embed(items)
    by_piece = {(m["source"], m["piece"]): v for v, m in records.values()}
    got = np.asarray([by_piece[(it.metadata["source"], it.metadata["piece"])] for it in items])
    assert np.max(np.abs(got - np.asarray(want))) < 1e-6

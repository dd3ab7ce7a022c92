"""``gemb2 index --batch-mode`` and ``gemb2 jobs`` end to end: emulator over HTTP, real Chroma."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import chromadb
import numpy as np
import pytest
from batch_helpers import DIMS, make_text_corpus
from chromadb.config import Settings

from gemb2.cli.main import main
from gemb2.testing import samples
from gemb2.testing.emulator import Emulator

JOB = re.compile(r"submitted (batches/[0-9a-z]+)")


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def records(db: Path, name: str = "gemb2") -> dict[str, Any]:
    """Every record of a collection, sorted by id, as plain data."""
    client = chromadb.PersistentClient(path=str(db), settings=Settings(anonymized_telemetry=False))
    got = client.get_collection(name).get(include=["embeddings", "metadatas", "documents", "uris"])
    order = np.argsort(got["ids"])
    return {
        "ids": [got["ids"][i] for i in order],
        "metadatas": [got["metadatas"][i] for i in order],
        "documents": [got["documents"][i] for i in order],
        "uris": [got["uris"][i] for i in order],
        "embeddings": np.asarray(got["embeddings"])[order],
    }


def assert_same_records(a: dict[str, Any], b: dict[str, Any]) -> None:
    assert a["ids"] == b["ids"]
    assert a["metadatas"] == b["metadatas"]
    assert a["documents"] == b["documents"]
    assert a["uris"] == b["uris"]
    np.testing.assert_array_equal(a["embeddings"], b["embeddings"])


def jobs_json(capsys: pytest.CaptureFixture[str], emu: Emulator, db: Path) -> list[dict[str, Any]]:
    code, out, err = run(capsys, "jobs", "--db", str(db), "--base-url", emu.base_url, "--json")
    assert code == 0, err
    return json.loads(out)  # type: ignore[no-any-return]


def index(
    capsys: pytest.CaptureFixture[str],
    emu: Emulator,
    db: Path,
    *paths: Path,
    extra: tuple[str, ...] = (),
) -> tuple[int, str, str]:
    return run(
        capsys,
        "index",
        *map(str, paths),
        "--db",
        str(db),
        "--base-url",
        emu.base_url,
        "--dimensions",
        str(DIMS),
        "-q",
        *extra,
    )


# --- 1,000 texts: Batch Mode stores exactly what online indexing stores -----------------------


@pytest.fixture(scope="module")
def thousand(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("thousand")
    make_text_corpus(d, 1000)
    return d


@pytest.fixture(scope="module")
def online_thousand(
    emulator_session: Emulator, thousand: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    db = tmp_path_factory.mktemp("online") / "db"
    code = main(
        [
            "index",
            str(thousand),
            "--db",
            str(db),
            "--base-url",
            emulator_session.base_url,
            "--dimensions",
            str(DIMS),
            "-q",
        ]
    )
    assert code == 0
    return records(db)


@pytest.mark.parametrize("mode", ["inline", "file"])
def test_1000_texts_batch_index_matches_online_index(
    capsys: pytest.CaptureFixture[str],
    emu: Emulator,
    thousand: Path,
    online_thousand: dict[str, Any],
    tmp_path: Path,
    mode: str,
) -> None:
    capsys.readouterr()
    db = tmp_path / "db"
    emu.configure(batch_hold="PENDING")
    before = emu.stats.requests
    code, out, err = index(capsys, emu, db, thousand, extra=("--batch-mode", "--batch-input", mode))
    assert code == 0, err
    assert emu.stats.requests == before  # nothing was embedded online
    assert "planned 1000 files: 1000 items for Batch Mode" in out
    (name,) = JOB.findall(out)
    assert f"submitted {name} ({mode}, 1000 items)" in out
    # the cost comparison: per modality, online next to Batch Mode, and the saving
    assert re.search(r"text\s+[\d,]+\s+\$\d+\.\d+\s+\$\d+\.\d+", out)
    assert "Batch Mode saves $" in out and "(50%)" in out
    assert f"gemb2 jobs collect {name} --db {db}" in out
    assert [
        (j["name"], j["state"], j["items"], j["input"]) for j in jobs_json(capsys, emu, db)
    ] == [(name, "PENDING", 1000, mode)]
    emu.configure(batch_hold="RUNNING")
    assert jobs_json(capsys, emu, db)[0]["state"] == "RUNNING"
    code, out, err = run(
        capsys, "jobs", "collect", name, "--db", str(db), "--base-url", emu.base_url
    )
    assert code == 1 and "is RUNNING" in err and "--wait" in err
    emu.configure(batch_hold=None, batch_delay=0)
    code, out, err = run(
        capsys, "jobs", "collect", name, "--db", str(db), "--base-url", emu.base_url
    )
    assert code == 0, err
    assert f"collected {name}: stored 1000 items into 'gemb2'" in out and "0 failed" in out
    assert_same_records(records(db), online_thousand)
    listed = jobs_json(capsys, emu, db)[0]
    assert listed["state"] == "SUCCEEDED" and listed["collected"] is not None
    assert listed["stored"] == 1000 and listed["failed"] == 0
    code, out, err = run(capsys, "jobs", "--db", str(db), "--base-url", emu.base_url)
    assert code == 0 and name in out and "SUCCEEDED" in out and "JOB" in out
    # a second run finds everything stored: no new job
    code, out, err = index(capsys, emu, db, thousand, extra=("--batch-mode",))
    assert code == 0 and "nothing to submit" in out and "1000 unchanged" in out


# --- failures, restarts, media ----------------------------------------------------------------


def test_three_failing_items_are_reported_and_the_rest_stored(
    capsys: pytest.CaptureFixture[str], emu: Emulator, tmp_path: Path
) -> None:
    files = make_text_corpus(tmp_path / "notes", 10)
    db = tmp_path / "db"
    emu.configure(batch_fail_indices=(2, 5, 7))
    code, out, err = index(capsys, emu, db, tmp_path / "notes", extra=("--batch-mode",))
    assert code == 0, err
    (name,) = JOB.findall(out)
    code, out, err = run(
        capsys,
        "jobs",
        "collect",
        name,
        "--wait",
        "--poll-interval",
        "0.02",
        "--db",
        str(db),
        "--base-url",
        emu.base_url,
    )
    assert code == 1
    assert "stored 7 items" in out and "3 failed" in out
    failed = re.findall(r"failed (\S+) \[", err)
    assert sorted(failed) == sorted(str(files[i]) for i in (2, 5, 7))
    assert "(13)" in err and "internal error" in err
    assert len(records(db)["ids"]) == 7
    # submitting again resubmits only the three that failed
    emu.configure(batch_fail_indices=())
    code, out, err = index(capsys, emu, db, tmp_path / "notes", extra=("--batch-mode",))
    assert code == 0, err
    assert "planned 3 files: 3 items for Batch Mode" in out and "7 unchanged" in out
    (again,) = JOB.findall(out)
    code, out, err = run(
        capsys,
        "jobs",
        "collect",
        again,
        "--wait",
        "--poll-interval",
        "0.02",
        "--db",
        str(db),
        "--base-url",
        emu.base_url,
    )
    assert code == 0, err
    assert sorted(m["source"] for m in records(db)["metadatas"]) == sorted(map(str, files))


def test_a_pending_job_is_not_submitted_twice(
    capsys: pytest.CaptureFixture[str], emu: Emulator, tmp_path: Path
) -> None:
    make_text_corpus(tmp_path / "notes", 4)
    db = tmp_path / "db"
    emu.configure(batch_hold="PENDING")
    code, out, err = index(capsys, emu, db, tmp_path / "notes", extra=("--batch-mode",))
    assert code == 0 and len(JOB.findall(out)) == 1
    code, out, err = index(capsys, emu, db, tmp_path / "notes", extra=("--batch-mode",))
    assert code == 0 and "nothing to submit" in out and "4 already waiting in a job" in out
    code, out, err = index(
        capsys, emu, db, tmp_path / "notes", extra=("--batch-mode", "--collection", "other")
    )
    assert code == 0 and "4 items for Batch Mode" in out  # another collection waits for none
    emu.configure(batch_hold=None)
    name = jobs_json(capsys, emu, db)[0]["name"]
    assert [j["collection"] for j in jobs_json(capsys, emu, db)] == ["gemb2", "other"]
    release = threading.Timer(0.3, lambda: emu.configure(batch_delay=0))
    release.start()
    code, out, err = run(
        capsys,
        "jobs",
        "--db",
        str(db),
        "--base-url",
        emu.base_url,
        "collect",
        name,
        "--wait",
        "--poll-interval",
        "0.05",
        "--timeout",
        "30",
    )
    release.join()
    assert code == 0, err
    assert "stored 4 items" in out


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("GOOGLE_API_KEY", "GEMINI_API_KEY")}
    env.pop("GEMB2_BASE_URL", None)
    return env


def test_collect_after_a_process_restart(emu: Emulator, tmp_path: Path) -> None:
    """Submit in one process, collect in another: the job id lives in the store."""
    make_text_corpus(tmp_path / "notes", 6)
    db = tmp_path / "db"
    emu.configure(batch_hold="PENDING")
    cli = [sys.executable, "-m", "gemb2.cli.main"]
    common = ["--db", str(db), "--base-url", emu.base_url]
    submit = subprocess.run(
        [
            *cli,
            "index",
            str(tmp_path / "notes"),
            *common,
            "--dimensions",
            str(DIMS),
            "-q",
            "--batch-mode",
        ],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=120,
    )
    assert submit.returncode == 0, submit.stderr
    (name,) = JOB.findall(submit.stdout)
    emu.configure(batch_hold=None, batch_delay=0)
    collect = subprocess.run(
        [*cli, "jobs", "collect", name, *common],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=120,
    )
    assert collect.returncode == 0, collect.stderr
    assert "stored 6 items" in collect.stdout
    stored = records(db)
    assert len(stored["ids"]) == 6
    with_online = tmp_path / "online"
    assert (
        main(
            [
                "index",
                str(tmp_path / "notes"),
                "--db",
                str(with_online),
                "--base-url",
                emu.base_url,
                "--dimensions",
                str(DIMS),
                "-q",
            ]
        )
        == 0
    )
    assert_same_records(stored, records(with_online))


@pytest.fixture
def corpus(tmp_path: Path) -> Iterator[Path]:
    d = tmp_path / "corpus"
    samples.make_sample_corpus(d)
    yield d


def test_media_are_stored_online_at_submit_by_default(
    capsys: pytest.CaptureFixture[str], emu: Emulator, corpus: Path, tmp_path: Path
) -> None:
    db = tmp_path / "db"
    emu.configure(batch_hold="PENDING")
    code, out, err = index(capsys, emu, db, corpus, extra=("--batch-mode",))
    assert code == 0, err
    now = records(db)
    assert now["ids"] and all(m["modality"] != "text" for m in now["metadatas"])
    assert "media embedded online now (--batch-media online): est. $" in out
    (name,) = JOB.findall(out)
    emu.configure(batch_hold=None, batch_delay=0)
    code, out, err = run(
        capsys, "jobs", "collect", name, "--db", str(db), "--base-url", emu.base_url
    )
    assert code == 0, err
    online = tmp_path / "online"
    assert index(capsys, emu, online, corpus)[0] == 0
    assert_same_records(records(db), records(online))


def test_media_batch_mode_refused_fall_back_online(
    capsys: pytest.CaptureFixture[str], emu: Emulator, corpus: Path, tmp_path: Path
) -> None:
    db = tmp_path / "db"
    emu.configure(batch_accepts_media=False)
    code, out, err = index(
        capsys, emu, db, corpus, extra=("--batch-mode", "--batch-media", "batch")
    )
    assert code == 0, err
    assert records(db)["ids"] == []  # everything waits in the job
    (name,) = JOB.findall(out)
    code, out, err = run(
        capsys,
        "jobs",
        "collect",
        name,
        "--wait",
        "--poll-interval",
        "0.02",
        "--db",
        str(db),
        "--base-url",
        emu.base_url,
    )
    assert code == 0, err
    fallen = re.findall(r"embedded online (\S+) .*Batch Mode did not accept it", err)
    media = sorted(str(p) for p in corpus.iterdir() if p.suffix != ".txt")
    assert sorted(set(fallen)) == media
    assert "0 failed" in out
    online = tmp_path / "online"
    assert index(capsys, emu, online, corpus)[0] == 0
    assert_same_records(records(db), records(online))


def test_without_a_key_the_private_emulator_collects_at_once(
    capsys: pytest.CaptureFixture[str],
    corpus: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("GEMB2_BASE_URL", raising=False)
    db = tmp_path / "db"
    code, out, err = run(
        capsys,
        "index",
        str(corpus),
        "--db",
        str(db),
        "--batch-mode",
        "-q",
        "--dimensions",
        str(DIMS),
    )
    assert code == 0, err
    assert "offline emulator" in out and "collected batches/" in out
    assert {m["source"] for m in records(db)["metadatas"]} == {str(p) for p in corpus.iterdir()}
    code, out, err = run(capsys, "jobs", "--db", str(db))
    assert code == 0 and "SUCCEEDED" in out and "last known states" in err


def test_jobs_without_any(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, err = run(
        capsys, "jobs", "--db", str(tmp_path / "none"), "--base-url", "http://127.0.0.1:9"
    )
    assert code == 0 and "no batch jobs recorded" in out
    code, out, err = run(
        capsys,
        "jobs",
        "collect",
        "batches/x",
        "--db",
        str(tmp_path / "none"),
        "--base-url",
        "http://127.0.0.1:9",
    )
    assert code == 2 and "no batch jobs recorded" in err

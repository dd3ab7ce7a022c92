"""The gemb2 command end to end: index, re-index, change, search, migrate, errors."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gemb2.cli.main import main
from gemb2.testing import samples
from gemb2.testing.emulator import Emulator


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    d = tmp_path / "corpus"
    samples.make_sample_corpus(d)
    return d


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def index(
    capsys: pytest.CaptureFixture[str],
    emu: Emulator,
    db: Path,
    *paths: str,
    extra: tuple[str, ...] = (),
) -> tuple[int, str, str]:
    return run(capsys, "index", *paths, "--db", str(db), "--base-url", emu.base_url, "-q", *extra)


def search_json(capsys: pytest.CaptureFixture[str], emu: Emulator, db: Path, *args: str) -> dict:
    code, out, err = run(
        capsys, "search", *args, "--db", str(db), "--base-url", emu.base_url, "--json"
    )
    assert code == 0, err
    return json.loads(out)


def test_index_reindex_change_and_search(
    capsys: pytest.CaptureFixture[str], emulator: Emulator, corpus: Path, tmp_path: Path
) -> None:
    db = tmp_path / "db"
    code, out, err = index(capsys, emulator, db, str(corpus))
    assert code == 0, err
    files = sorted(p for p in corpus.iterdir())
    assert f"indexed {len(files)} files" in out
    first_items = emulator.stats.items
    assert first_items >= len(files)
    assert "est. $" in out and "image $" in out

    emulator.reset_stats()
    code, out, err = index(capsys, emulator, db, str(corpus))
    assert code == 0, err
    assert emulator.stats.requests == 0
    assert f"{len(files)} unchanged" in out

    txt = sorted(corpus.glob("*.txt"))[0]
    txt.write_text("an entirely new text about lighthouses and fog horns")
    emulator.reset_stats()
    code, out, err = index(capsys, emulator, db, str(corpus))
    assert code == 0, err
    assert emulator.stats.items == 1
    assert "indexed 1 files" in out and "1 stale pieces removed" in out

    res = search_json(capsys, emulator, db, "lighthouses and fog horns")
    assert res["results"][0]["source"] == str(txt)
    assert set(res["results"][0]) >= {
        "rank",
        "id",
        "score",
        "source",
        "modality",
        "page_start",
        "page_end",
        "start_seconds",
        "end_seconds",
    }
    res = search_json(capsys, emulator, db, "a red circle")
    top = res["results"][0]
    assert top["modality"] == "image" and top["source"].endswith(".png")
    assert res["results"][0]["score"] >= res["results"][1]["score"]

    query_image = tmp_path / "query.png"
    samples.make_png(query_image, "a red circle", color=(250, 10, 10), shape="circle")
    res = search_json(capsys, emulator, db, "--image", str(query_image))
    assert res["results"][0]["source"] == top["source"]

    code, out, _ = run(
        capsys, "search", "volcanoes", "--db", str(db), "--base-url", emulator.base_url
    )
    assert code == 0 and out.strip().splitlines()[0].lstrip().startswith("1.")
    assert "pages" in out


def test_migrate_between_collections(
    capsys: pytest.CaptureFixture[str], emulator: Emulator, corpus: Path, tmp_path: Path
) -> None:
    db = tmp_path / "db"
    code, _, err = index(
        capsys,
        emulator,
        db,
        str(corpus),
        extra=("--collection", "old", "--model", "gemini-embedding-001", "--dimensions", "768"),
    )
    # 001 is text-only: media files are listed as skipped, text files indexed
    assert code == 0 and "text-only" in err
    code, out, err = run(
        capsys,
        "migrate",
        "--from-collection",
        "old",
        "--to-collection",
        "new",
        "--model",
        "gemini-embedding-2",
        "--dimensions",
        "768",
        "--db",
        str(db),
        "--base-url",
        emulator.base_url,
        "-q",
    )
    assert code == 0, err
    assert "to 'new' with gemini-embedding-2 at 768 dimensions" in out
    res = search_json(capsys, emulator, db, "--collection", "new", "honeybees")
    assert res["results"][0]["source"].endswith(".txt") or res["results"][0]["source"].endswith(
        ".pdf"
    )
    import chromadb

    meta = chromadb.PersistentClient(path=str(db)).get_collection("new").metadata
    assert meta["gemb2:model"] == "gemini-embedding-2"


def test_errors_are_clear(
    capsys: pytest.CaptureFixture[str], emulator: Emulator, corpus: Path, tmp_path: Path
) -> None:
    code, _, err = index(capsys, emulator, tmp_path / "db", str(tmp_path / "nope"))
    assert code == 2 and "nope: no such file or directory" in err

    (corpus / "program.exe").write_bytes(b"MZ" + b"\x00" * 200)
    code, out, err = index(capsys, emulator, tmp_path / "db", str(corpus))
    assert code == 0
    assert "skipped" in err and "program.exe" in err
    assert "1 skipped" in out

    code, _, err = run(
        capsys,
        "index",
        str(corpus),
        "--chroma-url",
        "http://127.0.0.1:9",
        "--base-url",
        emulator.base_url,
        "-q",
    )
    assert code == 2 and "cannot reach the Chroma server at http://127.0.0.1:9" in err

    code, _, err = run(
        capsys, "search", "x", "--db", str(tmp_path / "empty"), "--base-url", emulator.base_url
    )
    assert code == 2 and "run `gemb2 index` first" in err


def test_embed_prints_json_lines(
    capsys: pytest.CaptureFixture[str], emulator: Emulator, media_dir: Path
) -> None:
    code, out, _ = run(
        capsys,
        "embed",
        "hello world",
        str(media_dir / "red_circle.png"),
        "--dimensions",
        "128",
        "--base-url",
        emulator.base_url,
    )
    lines = [json.loads(x) for x in out.strip().splitlines()]
    assert code == 0 and [x["dimensions"] for x in lines] == [128, 128]
    assert abs(sum(v * v for v in lines[0]["values"]) - 1) < 1e-6


def test_no_key_starts_emulator_and_says_so(corpus: Path, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("GOOGLE_API_KEY", "GEMINI_API_KEY")}
    exe = shutil.which("gemb2", path=str(Path(sys.executable).parent))
    assert exe
    db = str(tmp_path / "db")
    idx = subprocess.run(
        [exe, "index", str(corpus), "--db", db, "-q"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert idx.returncode == 0, idx.stderr
    assert "stand-ins" in idx.stderr
    found = subprocess.run(
        [exe, "search", "ocean waves at a beach", "--db", db],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert found.returncode == 0, found.stderr
    assert "stand-in" in found.stdout
    assert found.stdout.splitlines()[1].split()[2] == "video"


def test_rerank_index_and_search(
    capsys: pytest.CaptureFixture[str], emulator: Emulator, corpus: Path, tmp_path: Path
) -> None:
    db = tmp_path / "db"
    code, _, err = index(capsys, emulator, db, str(corpus), extra=("--rerank-dims", "256"))
    assert code == 0, err
    import chromadb

    from gemb2.stores.matryoshka import FullVectorStore

    col = chromadb.PersistentClient(path=str(db)).get_collection("gemb2")
    assert col.metadata["gemb2:dimensions"] == 256
    assert col.metadata["gemb2:full_dimensions"] == 3072
    assert len(col.get(limit=1, include=["embeddings"])["embeddings"][0]) == 256
    store = FullVectorStore(db / "gemb2.full.sqlite", 3072)
    assert store.ids() == set(col.get(include=[])["ids"])

    reranked = search_json(capsys, emulator, db, "a red circle", "--rerank")
    plain = search_json(capsys, emulator, db, "a red circle")
    assert reranked["results"][0]["source"].endswith("red_circle.png")
    # re-ranked scores are full-size cosines, not the 256-d shortlist's
    assert reranked["results"][0]["score"] != pytest.approx(plain["results"][0]["score"], abs=1e-4)
    code, _, err = run(
        capsys,
        "search",
        "x",
        "--rerank",
        "--collection",
        "other",
        "--db",
        str(db),
        "--base-url",
        emulator.base_url,
    )
    assert code == 2 and "not found" in err


def test_the_suite_keeps_out_of_the_users_cache(tmp_path: Path) -> None:
    """tests/conftest.py points the ``auto`` limiter's file into pytest's temporary tree for
    this process and the commands it starts (the check runs in a child, as the CLI tests do)."""
    from gemb2.engine import limiter_backends

    home_cache = Path.home() / ".cache"
    here = limiter_backends.default_path()
    child = subprocess.run(
        [
            sys.executable,
            "-c",
            "from gemb2.engine.limiter_backends import default_path; print(default_path())",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    for path in (here, Path(child)):
        assert not path.is_relative_to(home_cache), path
        assert path.is_relative_to(tmp_path.parent), path

"""``gemb2 index`` on folders as users have them: copies of the same file, long blank
PDFs, and file names that are not UTF-8. Identical content is paid for once, every path
is found, a re-run makes no call, and one odd name never ends the run."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import chromadb
import numpy as np
import pytest
from chromadb.config import Settings

from gemb2.cli.main import main
from gemb2.testing import samples
from gemb2.testing.emulator import Emulator

DIMS = "128"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def index(
    capsys: pytest.CaptureFixture[str], emu: Emulator, db: Path, *paths: str
) -> tuple[int, str, str]:
    return run(
        capsys,
        "index",
        *paths,
        "--db",
        str(db),
        "--base-url",
        emu.base_url,
        "--dimensions",
        DIMS,
        "-q",
    )


def search(
    capsys: pytest.CaptureFixture[str], emu: Emulator, db: Path, query: str, k: int
) -> list[dict[str, Any]]:
    code, out, err = run(
        capsys, "search", query, "--db", str(db), "--base-url", emu.base_url, "-k", str(k), "--json"
    )
    assert code == 0, err
    return list(json.loads(out)["results"])


def records(db: Path) -> dict[str, Any]:
    """Every record of the CLI's collection: id -> (metadata, vector)."""
    client = chromadb.PersistentClient(path=str(db), settings=Settings(anonymized_telemetry=False))
    got = client.get_collection("gemb2").get(include=["metadatas", "embeddings"])
    return {
        rid: (dict(meta), np.asarray(vec))
        for rid, meta, vec in zip(got["ids"], got["metadatas"], got["embeddings"], strict=True)
    }


def by_source(db: Path) -> dict[str, list[tuple[dict[str, Any], np.ndarray]]]:
    found: dict[str, list[tuple[dict[str, Any], np.ndarray]]] = {}
    for meta, vec in records(db).values():
        found.setdefault(str(meta["source"]), []).append((meta, vec))
    return found


def test_copies_in_one_batch_are_embedded_once_and_every_path_is_found(
    capsys: pytest.CaptureFixture[str], emulator: Emulator, tmp_path: Path
) -> None:
    folder = tmp_path / "photos"
    (folder / "backup").mkdir(parents=True)
    red = samples.make_png(folder / "red.png", "a red circle", color=(255, 0, 0), shape="circle")
    shutil.copy(red, folder / "red copy.png")
    shutil.copy(red, folder / "backup" / "red.png")
    samples.make_png(folder / "blue.png", "a blue square", color=(0, 0, 255), shape="square")
    (folder / "notes.txt").write_text("volcanoes erupt lava")
    shutil.copy(folder / "notes.txt", folder / "backup" / "notes.txt")
    paths = sorted(str(p) for p in folder.rglob("*") if p.is_file())
    db = tmp_path / "db"

    code, out, err = index(capsys, emulator, db, str(folder))
    assert code == 0, err
    # three distinct contents (red, blue, the note): three items reach the service
    assert emulator.stats.items == 3
    assert f"indexed {len(paths)} files ({len(paths)} items)" in out
    assert "3 copies of identical content (no call)" in out
    stored = by_source(db)
    assert sorted(stored) == paths
    reds = [stored[str(p)][0][1] for p in (red, folder / "red copy.png", folder / "backup/red.png")]
    for vec in reds[1:]:
        np.testing.assert_array_equal(vec, reds[0])

    hits = search(capsys, emulator, db, "a red circle", k=3)
    assert {h["source"] for h in hits} == {
        str(red),
        str(folder / "red copy.png"),
        str(folder / "backup" / "red.png"),
    }
    assert len({round(h["score"], 5) for h in hits}) == 1  # one vector, three records

    emulator.reset_stats()
    code, out, err = index(capsys, emulator, db, str(folder))
    assert code == 0, err
    assert emulator.stats.requests == 0
    assert f"{len(paths)} unchanged" in out and "indexed 0 files" in out
    assert len(records(db)) == len(paths)


def test_copies_in_different_batches_each_keep_their_record(
    capsys: pytest.CaptureFixture[str], emulator: Emulator, tmp_path: Path
) -> None:
    # the indexer embeds 200 items per round: 260 texts put the two copies in different
    # rounds (the walk is sorted: a.png first, z.png last)
    folder = tmp_path / "corpus"
    folder.mkdir()
    first = samples.make_png(folder / "a.png", "a yellow star", color=(255, 220, 0), shape="star")
    for i in range(260):
        (folder / f"t{i:03d}.txt").write_text(f"note {i} about topic {i % 7}")
    last = shutil.copy(first, folder / "z.png")
    db = tmp_path / "db"

    code, out, err = index(capsys, emulator, db, str(folder))
    assert code == 0, err
    assert emulator.stats.items == 261  # the 260 texts and the star, once
    stored = by_source(db)
    assert len(stored) == 262 and len(records(db)) == 262
    np.testing.assert_array_equal(stored[str(first)][0][1], stored[str(last)][0][1])
    hits = search(capsys, emulator, db, "a yellow star", k=2)
    assert {h["source"] for h in hits} == {str(first), str(last)}

    emulator.reset_stats()
    code, out, err = index(capsys, emulator, db, str(folder))
    assert code == 0, err
    assert emulator.stats.requests == 0 and "262 unchanged" in out


def test_a_long_blank_pdf_embeds_its_identical_pieces_once(
    capsys: pytest.CaptureFixture[str], emulator: Emulator, tmp_path: Path
) -> None:
    folder = tmp_path / "scans"
    folder.mkdir()
    samples.make_pdf(folder / "blank.pdf", [""] * 60)  # ten identical 6-page pieces
    samples.make_pdf(folder / "report.pdf", [f"page {i} of the report" for i in range(12)])
    db = tmp_path / "db"

    code, out, err = index(capsys, emulator, db, str(folder))
    assert code == 0, err
    assert emulator.stats.items == 3  # one blank piece and the report's two pieces
    assert "indexed 2 files (12 items)" in out
    blank = by_source(db)[str(folder / "blank.pdf")]
    assert sorted((m["page_start"], m["page_end"]) for m, _ in blank) == [
        (p, p + 5) for p in range(1, 61, 6)
    ]
    for _, vec in blank[1:]:
        np.testing.assert_array_equal(vec, blank[0][1])

    emulator.reset_stats()
    code, out, err = index(capsys, emulator, db, str(folder))
    assert code == 0, err
    assert emulator.stats.requests == 0 and "2 unchanged" in out


def _write_bytes_name(folder: Path, name: bytes, data: bytes) -> Path:
    with open(os.path.join(os.fsencode(folder), name), "wb") as f:
        f.write(data)
    return Path(os.fsdecode(os.path.join(os.fsencode(folder), name)))


def test_file_names_that_are_not_utf8_are_indexed_under_an_escaped_name(
    capsys: pytest.CaptureFixture[str], emulator: Emulator, tmp_path: Path
) -> None:
    folder = tmp_path / "mixed"
    folder.mkdir()
    good = samples.make_png(folder / "good.png", "a red circle", color=(255, 0, 0))
    blue = samples.make_png(tmp_path / "blue.png", "a blue square", color=(0, 0, 255))
    bad = _write_bytes_name(folder, b"bad\xffname.png", blue.read_bytes())
    latin = _write_bytes_name(folder, b"caf\xe9 notes.txt", b"honeybees make honey")
    junk = _write_bytes_name(folder, b"prog\xfe.exe", b"MZ" + b"\0" * 200)
    db = tmp_path / "db"

    code, out, err = index(capsys, emulator, db, str(folder))
    assert code == 0, err
    assert "Traceback" not in err
    assert "indexed 3 files (3 items)" in out and "1 skipped" in out
    # the skipped file is named as it is stored: the bad byte escaped, on one line
    assert f"skipped {folder}/prog\\xfe.exe: " in err
    stored = by_source(db)
    assert sorted(stored) == sorted(
        [str(good), f"{folder}/bad\\xffname.png", f"{folder}/caf\\xe9 notes.txt"]
    )
    from gemb2.ingest.loading import source_path

    for path in (bad, latin):
        (meta, _), *_ = stored[
            f"{folder}/{os.fsencode(path.name).decode('utf-8', 'backslashreplace')}"
        ]
        assert meta["source_escaped"] is True
        # reversible: the escaped name gives back the real bytes
        assert os.fsencode(source_path(meta)) == os.fsencode(path)
        assert source_path(meta).read_bytes() == path.read_bytes()
    assert "source_escaped" not in stored[str(good)][0][0]
    assert not junk.name.isascii()

    hits = search(capsys, emulator, db, "a blue square", k=1)
    assert hits[0]["source"] == f"{folder}/bad\\xffname.png"

    emulator.reset_stats()
    code, out, err = index(capsys, emulator, db, str(folder))
    assert code == 0, err
    assert emulator.stats.requests == 0 and "3 unchanged" in out

    # migrate finds the real file behind the escaped name
    code, out, err = run(
        capsys,
        "migrate",
        "--from-collection",
        "gemb2",
        "--to-collection",
        "again",
        "--dimensions",
        "256",
        "--db",
        str(db),
        "--base-url",
        emulator.base_url,
        "-q",
    )
    assert code == 0, err
    assert "migrated 3 files (3 items)" in out and "0 sources missing" in out


def test_batch_mode_submits_identical_texts_once_and_stores_every_copy(
    capsys: pytest.CaptureFixture[str], emulator: Emulator, tmp_path: Path
) -> None:
    import re

    emulator.configure(batch_delay=0.05)
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "a.txt").write_text("glaciers carve valleys")
    shutil.copy(folder / "a.txt", folder / "a copy.txt")
    (folder / "b.txt").write_text("honeybees make honey")
    red = samples.make_png(folder / "r.png", "a red circle", color=(255, 0, 0))
    shutil.copy(red, folder / "r copy.png")
    db = tmp_path / "db"
    argv = ("--db", str(db), "--base-url", emulator.base_url, "-q")
    batch = ("index", str(folder), "--batch-mode", "--dimensions", DIMS, *argv)

    code, out, err = run(capsys, *batch)
    assert code == 0, err
    # the two distinct texts go to the job; the picture (media: online) is embedded once now
    assert "2 items for Batch Mode, 2 stored now" in out
    assert "1 copies of identical items (submitted once)" in out
    assert emulator.stats.items == 1
    (job,) = re.findall(r"submitted (batches/[0-9a-z]+)", out)
    code, out, err = run(capsys, "jobs", "collect", job, "--wait", "--poll-interval", "0.1", *argv)
    assert code == 0, err
    assert f"collected {job}: stored 3 items" in out
    stored = by_source(db)
    assert sorted(stored) == sorted(str(p) for p in folder.iterdir())
    a, a_copy = stored[str(folder / "a.txt")][0], stored[str(folder / "a copy.txt")][0]
    np.testing.assert_array_equal(a[1], a_copy[1])

    emulator.reset_stats()
    code, out, err = run(capsys, *batch)
    assert code == 0, err
    assert "nothing to submit" in out and "5 unchanged" in out
    assert emulator.stats.requests == 0

"""gemb2.stores.chroma.GeminiEmbeddingFunction on real ChromaDB (embedded and `chroma run`)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlparse

import chromadb
import numpy as np
import pytest
from PIL import Image

from gemb2 import ModelMismatchError
from gemb2.stores.chroma import NAME, GeminiEmbeddingFunction, open_collection
from gemb2.testing.emulator import Emulator

SECRET = "AIzaSy-CHROMA-SECRET-42"
MEDIA = [
    "red_circle.png",
    "blue_square.png",
    "yellow_star.jpg",
    "piano.wav",
    "waves.mp4",
    "three_pages.pdf",
]


def _ef(emulator: Emulator, **kw: object) -> GeminiEmbeddingFunction:
    return GeminiEmbeddingFunction(base_url=emulator.base_url, dimensions=768, **kw)  # type: ignore[arg-type]


def _check_media_queries(collection: chromadb.Collection) -> None:
    expectations = {
        "a red circle": "red_circle.png",
        "ocean waves at a beach": "waves.mp4",
        "a piano playing a note": "piano.wav",
        "honeybees make honey": "three_pages.pdf",
    }
    for query, expected in expectations.items():
        res = collection.query(query_texts=[query], n_results=3)
        assert res["ids"][0][0] == expected, (query, res["ids"][0])


def test_uris_over_mixed_media_persistent(
    emulator: Emulator, media_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MY_GEMINI_KEY", SECRET)
    client = chromadb.PersistentClient(path=str(tmp_path / "db"))
    ef = _ef(emulator, api_key_env_var="MY_GEMINI_KEY")
    col = open_collection(client, "media", ef)
    col.add(ids=MEDIA, uris=[str(media_dir / m) for m in MEDIA])
    assert emulator.stats.items == len(MEDIA)
    got = col.get(ids=["red_circle.png"], include=["embeddings"])
    assert len(got["embeddings"][0]) == 768
    _check_media_queries(col)
    # a text document lands in the same space
    col.add(ids=["note"], documents=["a note about red circles"])
    assert col.query(query_texts=["red circles"], n_results=1)["ids"][0][0] in {
        "note",
        "red_circle.png",
    }

    config = col.configuration_json["embedding_function"]
    assert config["name"] == NAME
    assert config["config"]["model_name"] == "gemini-embedding-2"
    assert config["config"]["dimension"] == 768
    assert config["config"]["api_key_env_var"] == "MY_GEMINI_KEY"
    stored = b"".join(p.read_bytes() for p in (tmp_path / "db").rglob("*") if p.is_file())
    assert SECRET.encode() not in stored
    assert b"MY_GEMINI_KEY" in stored  # the config really is persisted there


def test_reopened_in_new_process_gets_function_back(
    emulator: Emulator, media_dir: Path, tmp_path: Path
) -> None:
    client = chromadb.PersistentClient(path=str(tmp_path / "db"))
    col = open_collection(client, "media", _ef(emulator))
    col.add(ids=MEDIA[:3], uris=[str(media_dir / m) for m in MEDIA[:3]])
    script = (
        "import json, sys, chromadb, gemb2.stores.chroma\n"
        "c = chromadb.PersistentClient(path=sys.argv[1]).get_collection('media')\n"
        "r = c.query(query_texts=['a yellow star'], n_results=1)\n"
        "print(json.dumps([type(c._embedding_function).__name__, r['ids'][0][0]]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "db")],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    assert json.loads(out.stdout.strip().splitlines()[-1])[1] == "yellow_star.jpg"


def test_images_as_pixel_arrays(emulator: Emulator, media_dir: Path, tmp_path: Path) -> None:
    client = chromadb.PersistentClient(path=str(tmp_path / "db"))
    col = open_collection(client, "pixels", _ef(emulator))
    arrays = [np.array(Image.open(media_dir / n).convert("RGB")) for n in MEDIA[:2]]
    col.add(ids=["a", "b"], images=arrays)
    assert emulator.stats.items == 2
    body = emulator.stats.last_bodies[-1]["requests"]
    assert [r["content"]["parts"][0]["inline_data"]["mime_type"] for r in body] == ["image/png"] * 2


def test_refuses_other_model_or_dimension(emulator: Emulator, tmp_path: Path) -> None:
    client = chromadb.PersistentClient(path=str(tmp_path / "db"))
    open_collection(client, "coll", _ef(emulator)).add(ids=["x"], documents=["hello"])
    with pytest.raises(ModelMismatchError, match="dimension=768"):
        open_collection(client, "coll", GeminiEmbeddingFunction(base_url=emulator.base_url))
    with pytest.raises(ModelMismatchError, match="gemini-embedding-001"):
        open_collection(
            client,
            "coll",
            GeminiEmbeddingFunction(
                model="gemini-embedding-001", dimensions=768, base_url=emulator.base_url
            ),
        )


def test_query_role_and_document_role(emulator: Emulator) -> None:
    ef = _ef(emulator)
    ef(["stored text"])
    assert emulator.stats.last_bodies[-1]["requests"][0]["content"]["parts"][0]["text"] == (
        "title: none | text: stored text"
    )
    ef.embed_query(["asked text"])
    assert emulator.stats.last_bodies[-1]["requests"][0]["content"]["parts"][0]["text"] == (
        "task: search result | query: asked text"
    )
    out = ef(["x"])
    assert isinstance(out[0][0], (float, np.floating))


def test_chroma_server(emulator: Emulator, media_dir: Path, chroma_server: str) -> None:
    url = urlparse(chroma_server)
    client = chromadb.HttpClient(host=url.hostname, port=url.port)
    col = open_collection(client, "server_media", _ef(emulator))
    col.add(ids=MEDIA, uris=[str(media_dir / m) for m in MEDIA])
    _check_media_queries(col)
    assert SECRET not in json.dumps(col.configuration_json)


def test_bad_file_fails_clearly_and_stores_nothing(
    emulator: Emulator, media_dir: Path, tmp_path: Path
) -> None:
    from gemb2 import MediaReadError

    (tmp_path / "bad.pdf").write_bytes(b"%PDF-1.4 truncated")
    client = chromadb.PersistentClient(path=str(tmp_path / "db"))
    col = open_collection(client, "coll", _ef(emulator))
    with pytest.raises(MediaReadError, match=r"item 1 \(.*bad\.pdf\): cannot read PDF"):
        col.add(
            ids=["ok", "bad"], uris=[str(media_dir / "red_circle.png"), str(tmp_path / "bad.pdf")]
        )
    assert col.count() == 0
    assert emulator.stats.requests == 0

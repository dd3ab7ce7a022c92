"""Ray Data on a local cluster (2 CPUs, started once for the module) against the emulator
over HTTP: ``gemb2.ray.EmbedBatch`` in ``map_batches`` gives the single-process
``Embedder``'s vectors for text, media and interleaved rows in every batch format;
bad rows are named; actors share one quota through a SQLite limiter;
``examples/ray_index.py`` indexes a folder and resumes with no call; LlamaIndex's
``RayIngestionPipeline`` gives the plain ``IngestionPipeline``'s vectors."""

from __future__ import annotations

import os
import pickle
import runpy
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import chromadb
import numpy as np
import pyarrow as pa
import pytest

ray = pytest.importorskip("ray")

from gemb2 import ConfigError, Embedder  # noqa: E402
from gemb2.ingest.indexer import index_paths  # noqa: E402
from gemb2.ray import EmbedBatch  # noqa: E402
from gemb2.testing import FakeTransport, samples  # noqa: E402
from gemb2.testing.emulator import Emulator  # noqa: E402

DIMS = 128
EXAMPLE = Path(__file__).parents[2] / "examples" / "ray_index.py"
FORMATS = ("default", "numpy", "pandas", "pyarrow")


@pytest.fixture(scope="module", autouse=True)
def cluster() -> Iterator[None]:
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    ray.data.DataContext.get_current().enable_progress_bars = False
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("ray-media")
    return {
        "png": samples.make_png(d / "red.png", "a red circle", color=(255, 0, 0), shape="circle"),
        "jpg": samples.make_jpeg(d / "star.jpg", "a yellow star", color=(255, 220, 0)),
        "wav": samples.make_wav(d / "piano.wav", 2, description="a piano note"),
        "pdf": samples.make_pdf(d / "two.pdf", ["volcanoes erupt lava", "honeybees"]),
    }


def _actors(n: int = 2) -> Any:
    return ray.data.ActorPoolStrategy(size=n)


def _mixed(files: dict[str, Path]) -> tuple[pa.Table, list[Any]]:
    """Rows of text alone, a file alone, and text with a file (one interleaved item),
    and what the single-process Embedder is given for each."""
    rows = [
        ("a cat on a mat", None),
        (None, files["png"]),
        ("a caption", files["jpg"]),
        ("the sea at night", None),
        (None, files["wav"]),
        ("two pages", files["pdf"]),
    ]
    table = pa.table(
        {
            "id": [f"r{i}" for i in range(len(rows))],
            "text": pa.array([t for t, _ in rows], pa.string()),
            "path": pa.array([str(p) if p else None for _, p in rows], pa.string()),
        }
    )
    items = [t if p is None else (p if t is None else [t, p]) for t, p in rows]
    return table, items


def _by_id(rows: list[dict[str, Any]], column: str = "embedding") -> dict[str, list[float]]:
    return {r["id"]: [float(x) for x in r[column]] for r in rows}


@pytest.mark.parametrize("fmt", FORMATS)
def test_text_media_and_interleaved_rows_match_the_embedder(
    fmt: str, emulator: Emulator, files: dict[str, Path]
) -> None:
    table, items = _mixed(files)
    ds = ray.data.from_arrow([table.slice(0, 3), table.slice(3)])  # two blocks, two actors
    out = ds.map_batches(
        EmbedBatch,
        fn_constructor_kwargs={
            "text_column": "text",
            "media_column": "path",
            "vector_column": "vec",
            "base_url": emulator.base_url,
            "dimensions": DIMS,
        },
        batch_size=2,
        batch_format=fmt,
        compute=_actors(),
    ).take_all()
    assert emulator.stats.items == 6  # every row sent once
    assert sorted(r["id"] for r in out) == [f"r{i}" for i in range(6)]
    assert {k for r in out for k in r} == {"id", "text", "path", "vec"}
    with Embedder(base_url=emulator.base_url, dimensions=DIMS) as single:
        want = single.embed(items)
    got = _by_id(out, "vec")
    for i, vector in enumerate(want):
        assert len(got[f"r{i}"]) == DIMS
        assert got[f"r{i}"] == pytest.approx(vector, abs=0), f"row r{i}"
    # an interleaved row is one item of its own, not its text's or its file's vector
    assert got["r2"] != pytest.approx(single_vector(emulator, "a caption"), abs=1e-6)


def single_vector(emulator: Emulator, value: Any) -> list[float]:
    with Embedder(base_url=emulator.base_url, dimensions=DIMS) as e:
        return e.embed([value])[0]


@pytest.mark.parametrize("fmt", ["numpy", "pyarrow"])
def test_media_bytes_rows_match_the_embedder(
    fmt: str, emulator: Emulator, files: dict[str, Path]
) -> None:
    paths = [files["png"], files["pdf"], files["wav"]]
    ds = ray.data.from_items([{"id": p.name, "data": p.read_bytes()} for p in paths])
    out = ds.map_batches(
        EmbedBatch,
        fn_constructor_kwargs={"media_column": "data", "base_url": emulator.base_url},
        batch_format=fmt,
        compute=_actors(1),
    ).take_all()
    with Embedder(base_url=emulator.base_url) as single:
        want = single.embed(paths)
    got = _by_id(out)
    assert [len(got[p.name]) for p in paths] == [3072] * 3
    for p, vector in zip(paths, want, strict=True):
        assert got[p.name] == pytest.approx(vector, abs=0), p.name


def test_a_bad_row_is_named_before_any_call(emulator: Emulator, files: dict[str, Path]) -> None:
    rows = [
        {"id": "good", "text": "fine", "path": None},
        {"id": "gone", "text": None, "path": str(files["png"].with_name("missing.png"))},
    ]
    ds = ray.data.from_items(rows, override_num_blocks=1)  # one batch: checked together
    with pytest.raises(Exception) as err:
        ds.map_batches(
            EmbedBatch,
            fn_constructor_kwargs={
                "text_column": "text",
                "media_column": "path",
                "id_column": "id",
                "base_url": emulator.base_url,
            },
            compute=_actors(1),
        ).take_all()
    text = str(err.value)
    # the item number counts within the batch; the id column names the row
    assert "item 1 (id='gone', " in text and "missing.png): no such file" in text, text[-800:]
    assert emulator.stats.requests == 0  # its batch's good row was not sent either


def test_rows_refused_in_process(emulator: Emulator) -> None:
    """The same checks without Ray: the callable itself (and each error it raises)."""
    fn = EmbedBatch(
        text_column="text", media_column="data", id_column="id", base_url=emulator.base_url
    )
    batch = {"id": np.array(["a", "b"]), "text": np.array(["x", None]), "data": [None, None]}
    with pytest.raises(ValueError, match=r"item 1 \(id='b'\): the row has neither text nor media"):
        fn(batch)
    with pytest.raises(ValueError, match=r"item 0 \(id='a', <bytes>\): content is text"):
        fn({"id": np.array(["a"]), "text": np.array([None]), "data": [b"just some words"]})
    with pytest.raises(ConfigError, match=r"no column 'text' \(its columns: id\)"):
        fn({"id": np.array(["a"])})
    with pytest.raises(ConfigError, match="a factory"):
        EmbedBatch(embedder=Embedder(base_url=emulator.base_url))  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="not both"):
        EmbedBatch(embedder=lambda: Embedder(), dimensions=8)
    assert emulator.stats.requests == 0


def test_pickled_it_travels_as_its_settings(emulator: Emulator) -> None:
    fn = EmbedBatch(api_key="AIza-secret-key-1234567890abc", base_url=emulator.base_url)
    copy = pickle.loads(pickle.dumps(fn))
    assert copy.embedder is not fn.embedder  # a worker builds its own client
    assert copy.embedder.settings == fn.embedder.settings
    assert "secret" not in repr(fn)


def test_an_embedder_factory_is_called_on_each_worker() -> None:
    """``embedder=`` (here one on the in-process FakeTransport, no socket)."""
    texts = [f"note {i}" for i in range(5)]
    ds = ray.data.from_items([{"id": str(i), "text": t} for i, t in enumerate(texts)])
    out = ds.map_batches(
        EmbedBatch,
        fn_constructor_kwargs={"embedder": lambda: Embedder(transport=FakeTransport())},
        batch_format="pandas",
        compute=_actors(1),
    ).take_all()
    want = Embedder(transport=FakeTransport()).embed(texts)
    got = _by_id(out)
    assert [got[str(i)] for i in range(5)] == [pytest.approx(v, abs=0) for v in want]


def _together(folder: Path, settings: dict[str, Any], n: int = 2) -> Any:
    """An embedder factory whose actors start embedding together: the first ``embed``
    waits (up to 60 s) until ``n`` processes have reached theirs. On a busy machine Ray can
    hand one actor its block seconds after the other, and two actors that never overlap
    cannot show whether they share a quota. (The class is made here so that Ray's workers,
    which cannot import this test module, receive it by value.)"""

    class Meeting(Embedder):
        met = False

        def embed(self, *args: Any, **kwargs: Any) -> Any:
            if not self.met:
                (folder / str(os.getpid())).touch()
                deadline = time.monotonic() + 60
                while len(list(folder.iterdir())) < n and time.monotonic() < deadline:
                    time.sleep(0.01)
                self.met = True
            return super().embed(*args, **kwargs)

    def make() -> Embedder:
        return Meeting(**settings)

    return make


def _quota_run(emulator: Emulator, limiter: str, n: int, rpm: float, tmp: Path) -> int:
    """Embed ``n`` rows on two actors, one block (and one call per row) each, every actor
    pacing to ``rpm`` through ``limiter``; the 429s the emulator answered."""
    emulator.reset_stats()
    settings = {
        "base_url": emulator.base_url,
        "dimensions": DIMS,
        "batch_size": 1,
        "max_concurrency": 2,
        "requests_per_minute": rpm,
        "limiter": limiter,
    }
    barrier = tmp / f"started-{limiter.split(':')[0]}"
    barrier.mkdir()
    rows = [{"id": str(i), "text": f"row {i}"} for i in range(n)]
    out = (
        ray.data.from_items(rows, override_num_blocks=2)
        .map_batches(
            EmbedBatch,
            fn_constructor_kwargs={"embedder": _together(barrier, settings)},
            batch_size=n // 2,
            # one block in flight per actor: both actors work at once
            compute=ray.data.ActorPoolStrategy(size=2, max_tasks_in_flight_per_actor=1),
        )
        .take_all()
    )
    got = _by_id(out)
    assert sorted(got, key=int) == [str(i) for i in range(n)]  # every row, once
    assert all(len(v) == DIMS for v in got.values())
    return emulator.stats.faults.get("rate_limit", 0)


def test_actors_share_one_quota_through_a_sqlite_limiter(
    emulator: Emulator, tmp_path: Path
) -> None:
    """The emulator enforces a quota of 600 calls/min (20 in any 2 s); two actors each told
    the quota is 400/min. Sharing one SQLite file they send 400/min between them (15 in any
    2 s, burst included: room for a call sent late on a loaded machine to bunch with the
    next) and none is refused; each pacing alone (the control) they send twice that and
    the emulator answers 429s. Both runs end with every vector."""
    emulator.configure(rate_limit_rpm=600, rate_limit_window=2.0)
    n, rpm = 48, 400.0
    shared = _quota_run(emulator, f"sqlite:///{tmp_path / 'quota.sqlite'}", n, rpm, tmp_path)
    assert shared == 0, f"{shared} calls refused with one shared quota"
    assert emulator.stats.requests == n  # none sent twice
    alone = _quota_run(emulator, "local", n, rpm, tmp_path)
    assert alone >= 3, f"the control overran the quota only {alone} times"
    assert emulator.stats.requests == n + alone  # each refused call sent again


# -- the example ---------------------------------------------------------------------


def _folder(root: Path) -> Path:
    d = root / "files"
    samples.make_sample_corpus(d)
    shutil.copy(d / "red_circle.png", d / "copy of red_circle (1).png")  # a duplicate
    (d / "sub dir").mkdir()
    shutil.copy(d / "baking_bread.txt", d / "sub dir" / "pain maison – recette.txt")
    with open(os.path.join(os.fsencode(d), b"bad\xffname.png"), "wb") as f:
        f.write((d / "blue_square.png").read_bytes())
    return d


def _run_example(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    argv = sys.argv
    sys.argv = [str(EXAMPLE), *args]
    try:
        with pytest.raises(SystemExit) as done:
            runpy.run_path(str(EXAMPLE), run_name="__main__")
    finally:
        sys.argv = argv
    assert done.value.code == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("target", ["embedded", "server"])
def test_the_example_indexes_a_folder_and_resumes_with_no_call(
    target: str,
    emulator: Emulator,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    request: pytest.FixtureRequest,
) -> None:
    """Into embedded Chroma (``--db``) or a real ``chroma run`` server (``--chroma-url``):
    the single-process indexer's records and vectors, and a second run sends no call."""
    folder = _folder(tmp_path)
    args: tuple[str, ...] = (str(folder), "--base-url", emulator.base_url, "--dimensions", "128")
    if target == "server":
        url = request.getfixturevalue("chroma_server")
        name = f"ray_index_{tmp_path.name}"[:60]  # the server outlives this test
        args += ("--chroma-url", url, "--collection", name)
        host, port = url.rsplit("//", 1)[1].split(":")
        client: Any = chromadb.HttpClient(host=host, port=int(port))
    else:
        name = "ray_index"
        args += ("--db", str(tmp_path / "db"))
        client = None
    out = _run_example(capsys, *args)
    assert "indexed 13 files, 0 unchanged, 0 skipped" in out
    first_calls = emulator.stats.requests
    assert first_calls > 0
    client = client or chromadb.PersistentClient(path=str(tmp_path / "db"))
    got = client.get_collection(name)
    stored = got.get(include=["embeddings", "metadatas"])
    # the same records and vectors as the single-process indexer (what `gemb2 index` runs)
    ref = chromadb.EphemeralClient().create_collection(f"ref_{target}")
    with Embedder(base_url=emulator.base_url, dimensions=DIMS) as single:
        index_paths([folder], ref, single)
    want = ref.get(include=["embeddings", "metadatas"])
    assert sorted(stored["ids"]) == sorted(want["ids"]) and len(want["ids"]) == 14
    mine = dict(zip(stored["ids"], stored["embeddings"], strict=True))
    for rid, vector in zip(want["ids"], want["embeddings"], strict=True):
        # Chroma keeps float32: the stored copies agree to its precision
        assert np.allclose(mine[rid], vector, rtol=0, atol=1e-6), rid
    sources = {m["source"] for m in stored["metadatas"]}
    assert f"{folder}/bad\\xffname.png" in sources
    assert f"{folder}/sub dir/pain maison – recette.txt" in sources

    emulator.reset_stats()
    again = _run_example(capsys, *args)
    assert "indexed 0 files, 13 unchanged" in again and "0 items embedded" in again
    assert emulator.stats.requests == 0
    assert got.count() == 14


# -- LlamaIndex: RayIngestionPipeline --------------------------------------------------


def test_ray_ingestion_pipeline_gives_the_plain_pipelines_vectors(
    emulator: Emulator, tmp_path: Path
) -> None:
    from llama_index.core import SimpleDirectoryReader
    from llama_index.core.ingestion import IngestionPipeline
    from llama_index.ingestion.ray import RayIngestionPipeline, RayTransformComponent

    from gemb2.ingest.pieces import PIECES
    from llamaindex_gemb2 import GeminiMediaNodeParser, GeminiMultiModalEmbedding

    d = tmp_path / "docs"
    d.mkdir()
    (d / "bees.txt").write_text("Honeybees make honey from nectar.\n", encoding="utf-8")
    samples.make_png(d / "red.png", "a red circle", color=(255, 0, 0), shape="circle")
    samples.make_pdf(d / "book.pdf", [f"page {i} about volcanoes" for i in range(1, 9)])
    settings = {"base_url": emulator.base_url, "dimensions": DIMS}

    def vectors(nodes: Any) -> dict[str, list[float]]:
        return {n.get_content(): list(n.embedding) for n in nodes}

    plain = IngestionPipeline(
        transformations=[GeminiMediaNodeParser(), GeminiMultiModalEmbedding(**settings)]
    ).run(documents=SimpleDirectoryReader(str(d)).load_data())
    PIECES.clear()  # the Ray actors cut the files again themselves
    emulator.reset_stats()
    ray_nodes = RayIngestionPipeline(
        transformations=[
            RayTransformComponent(GeminiMediaNodeParser, map_batches_kwargs={"batch_size": 16}),
            RayTransformComponent(
                GeminiMultiModalEmbedding,
                transform_kwargs=settings,
                map_batches_kwargs={"batch_size": 16, "compute": _actors(1)},
            ),
        ]
    ).run(documents=SimpleDirectoryReader(str(d)).load_data())
    assert emulator.stats.items == len(plain) == 4  # text, image, two PDF pieces
    got, want = vectors(ray_nodes), vectors(plain)
    assert sorted(got) == sorted(want)
    for content, vector in want.items():
        assert len(got[content]) == DIMS
        assert got[content] == pytest.approx(vector, abs=0), content
    assert sorted(n.metadata["modality"] for n in ray_nodes) == ["image", "pdf", "pdf", "text"]

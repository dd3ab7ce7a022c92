"""LlamaIndex as its docs write it: ``SimpleDirectoryReader(folder).load_data()`` on a
folder of real files, then ``VectorStoreIndex.from_documents`` (with ``embed_model=``
or ``Settings.embed_model``) or an ``IngestionPipeline`` with an ``IngestionCache``.

Every media node gemb2 pays for must reach the index, and no vector out of the cache
may belong to other media. ``SimpleDirectoryReader`` reads images two ways: without
llama-index-readers-file (as installed here) it stores their bytes decoded as text;
with it, its ``ImageReader`` makes an ``ImageDocument`` with no text, which
``ImageReaderLike`` below reproduces. Both are exercised.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import chromadb
import pytest
from li_helpers import DIMS, NOTES, part_bytes, part_kind, sent_contents
from llama_index.core import Settings, SimpleDirectoryReader, StorageContext, VectorStoreIndex
from llama_index.core.ingestion import IngestionCache, IngestionPipeline
from llama_index.core.readers.base import BaseReader
from llama_index.core.schema import Document, ImageDocument
from llama_index.core.storage.docstore import SimpleDocumentStore
from llama_index.core.vector_stores import SimpleVectorStore
from llama_index.vector_stores.chroma import ChromaVectorStore

from gemb2 import Embedder, InputError
from gemb2.testing import samples
from gemb2.testing.emulator import Emulator
from llamaindex_gemb2 import GeminiMediaNodeParser, GeminiMultiModalEmbedding, label_media

# without llama-index-readers-file SimpleDirectoryReader has no reader for images and
# stores their bytes decoded as text; with it, its ImageReader's ImageDocuments
IMAGES_AS_TEXT = ".png" not in SimpleDirectoryReader.supported_suffix_fn()
AS_INSTALLED = pytest.param(
    "as-installed",
    marks=pytest.mark.skipif(
        not IMAGES_AS_TEXT, reason="images load as ImageDocuments: the image-reader case"
    ),
)
QUERIES = {
    "a red circle": "red_circle.png",
    "a yellow star": "yellow_star.jpg",
    "honeybees make honey from nectar": "notes.txt",
}


class ImageReaderLike(BaseReader):
    """What llama-index-readers-file's ``ImageReader`` (SimpleDirectoryReader's reader
    for .png/.jpg once that package is installed) returns with its defaults: an
    ``ImageDocument`` with ``text=""``, the file's ``image_path`` and the reader's
    file metadata."""

    def load_data(
        self, file: Path, extra_info: dict[str, Any] | None = None, **kwargs: Any
    ) -> list[Document]:
        return [ImageDocument(text="", image=None, image_path=str(file), metadata=extra_info or {})]


def load(folder: Path | None = None, *, reader: str, files: list[Path] | None = None) -> list:
    """``SimpleDirectoryReader(...).load_data()``, as installed or with ImageReader."""
    extractor = {".png": ImageReaderLike(), ".jpg": ImageReaderLike()}
    kwargs: dict[str, Any] = {"file_extractor": extractor} if reader == "image-reader" else {}
    if files is not None:
        return SimpleDirectoryReader(input_files=[str(f) for f in files], **kwargs).load_data()
    return SimpleDirectoryReader(str(folder), **kwargs).load_data()


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A PNG, a JPEG and a text file, as a user's folder holds them."""
    d = tmp_path / "data"
    d.mkdir()
    samples.make_png(d / "red_circle.png", "a red circle", color=(255, 0, 0), shape="circle")
    samples.make_jpeg(d / "yellow_star.jpg", "a yellow star", color=(255, 220, 0), shape="star")
    (d / "notes.txt").write_text(NOTES + "\n", encoding="utf-8")
    return d


@pytest.fixture
def global_settings() -> Iterator[None]:
    """Tests set ``Settings.embed_model`` as LlamaIndex's docs do; put it back after."""
    saved = Settings._embed_model
    yield
    Settings._embed_model = saved


def direct(emulator: Emulator, *inputs: Any) -> list[list[float]]:
    """The vectors the core gives the same media, embedded on their own."""
    with Embedder(base_url=emulator.base_url, dimensions=DIMS) as embedder:
        return embedder.embed(list(inputs))


def _stored(index: VectorStoreIndex, collection: Any) -> dict[str, list[float]]:
    """The vectors the index's store holds, by file name."""
    if collection is not None:
        got = collection.get(include=["embeddings", "metadatas"])
        metas, vectors = got["metadatas"], [list(e) for e in got["embeddings"]]
    else:
        data = index.vector_store.data.embedding_dict  # type: ignore[attr-defined]
        metas = [index.docstore.docs[i].metadata for i in data]
        vectors = list(data.values())
    names = [Path(str(m.get("file_path") or m["source"])).name for m in metas]
    assert len(names) == len(set(names)), names  # one node per file
    return dict(zip(names, vectors, strict=True))


@pytest.mark.parametrize("reader", ["as-installed", "image-reader"])
@pytest.mark.parametrize("style", ["embed_model=", "Settings.embed_model"])
def test_from_documents_keeps_every_image_it_paid_for(
    emulator: Emulator,
    folder: Path,
    tmp_path: Path,
    embed_model: GeminiMultiModalEmbedding,
    global_settings: None,
    capsys: pytest.CaptureFixture[str],
    reader: str,
    style: str,
) -> None:
    png, jpg = folder / "red_circle.png", folder / "yellow_star.jpg"
    want = dict(zip(["red_circle.png", "yellow_star.jpg"], direct(emulator, png, jpg), strict=True))
    for with_parser in (False, True):
        emulator.reset_stats()
        documents = load(folder, reader=reader)
        collection = None
        if style == "embed_model=":  # the per-index form, into Chroma
            client = chromadb.PersistentClient(path=str(tmp_path / f"db{with_parser}"))
            collection = client.get_or_create_collection(
                "files", configuration={"hnsw": {"space": "cosine"}}
            )
            steps = [GeminiMediaNodeParser(), embed_model] if with_parser else [embed_model]
            index = VectorStoreIndex.from_documents(
                documents,
                storage_context=StorageContext.from_defaults(
                    vector_store=ChromaVectorStore(chroma_collection=collection)
                ),
                transformations=steps,
                embed_model=embed_model,
            )
        else:  # the global form, in memory
            Settings.embed_model = embed_model
            steps = [Settings.embed_model]
            index = VectorStoreIndex.from_documents(
                documents,
                transformations=[GeminiMediaNodeParser(), *steps] if with_parser else steps,
            )

        # one call for the three files; the images went as images and none was dropped
        assert (emulator.stats.requests, emulator.stats.items) == (1, 3)
        sent = {part_kind(c["parts"][0]): c["parts"][0] for c in sent_contents(emulator)}
        assert sorted(sent) == ["image/jpeg", "image/png", "text"]
        assert part_bytes(sent["image/png"]) == png.read_bytes()
        assert part_bytes(sent["image/jpeg"]) == jpg.read_bytes()
        assert "missing content" not in capsys.readouterr().out
        stored = _stored(index, collection)
        assert sorted(stored) == ["notes.txt", "red_circle.png", "yellow_star.jpg"]
        for name, vector in want.items():
            assert stored[name] == pytest.approx(vector)
        if collection is None:
            assert len(index.docstore.docs) == len(index.index_struct.nodes_dict) == 3

        retriever = index.as_retriever(similarity_top_k=1)
        for query, name in QUERIES.items():
            top = retriever.retrieve(query)[0].node
            source = top.metadata.get("file_path") or top.metadata["source"]
            assert Path(source).name == name, (query, with_parser)
            if name != "notes.txt":
                assert top.get_content() == f"[image] {name}"  # its label, not its bytes


@pytest.mark.parametrize("style", ["embed_model=", "Settings.embed_model"])
def test_an_index_given_only_the_model_refuses_images_as_text(
    emulator: Emulator,
    folder: Path,
    embed_model: GeminiMultiModalEmbedding,
    global_settings: None,
    style: str,
) -> None:
    """Without gemb2 in transformations the index hands the model node *text*: an
    image's bytes read as text, or (with ImageReader) only its metadata. Either would
    be paid for as a vector of bytes or of a file name, so both are refused before any
    call, naming the file and the fix."""

    def build(documents: list) -> VectorStoreIndex:
        if style == "embed_model=":
            return VectorStoreIndex.from_documents(documents, embed_model=embed_model)
        Settings.embed_model = embed_model
        return VectorStoreIndex.from_documents(documents)

    as_installed = "binary file read as text" if IMAGES_AS_TEXT else "only the metadata"
    for reader, what in (
        ("as-installed", as_installed),
        ("image-reader", "only the metadata of a media node"),
    ):
        with pytest.raises(InputError, match=what) as info:
            build(load(folder, reader=reader))
        message = str(info.value)
        assert "transformations=[...]" in message
        assert (
            str(folder / "red_circle.png") in message or str(folder / "yellow_star.jpg") in message
        )
    assert emulator.stats.requests == 0
    # the text file alone builds as usual
    assert len(build(load(files=[folder / "notes.txt"], reader="as-installed")).docstore.docs) == 1


def test_in_memory_image_documents_reach_the_index(
    emulator: Emulator, folder: Path, embed_model: GeminiMultiModalEmbedding
) -> None:
    images = [folder / "red_circle.png", folder / "yellow_star.jpg"]
    docs = [ImageDocument(image=base64.b64encode(p.read_bytes()).decode()) for p in images]
    index = VectorStoreIndex.from_documents(
        docs, transformations=[embed_model], embed_model=embed_model
    )
    assert emulator.stats.items == 2
    assert len(index.index_struct.nodes_dict) == 2
    top = index.as_retriever(similarity_top_k=1).retrieve("a red circle")[0].node
    assert top.node_id == docs[0].node_id
    # labelled by content, not by the random id, so the label is the same on every run
    assert top.get_content() == f"[image] {hashlib.sha256(images[0].read_bytes()).hexdigest()[:12]}"
    assert docs[0].embedding == pytest.approx(direct(emulator, images[0])[0])


# -- IngestionPipeline's cache ------------------------------------------------------


def _pipeline(embed_model: GeminiMultiModalEmbedding, parser: bool, **kw: Any) -> IngestionPipeline:
    steps: list[Any] = [GeminiMediaNodeParser(), embed_model] if parser else [embed_model]
    return IngestionPipeline(transformations=steps, **kw)


def _two_pictures(tmp_path: Path) -> tuple[Path, Path]:
    """Two different pictures under one name, in two folders."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    red = samples.make_png(tmp_path / "a" / "photo.png", "a red circle", color=(255, 0, 0))
    blue = samples.make_png(
        tmp_path / "b" / "photo.png", "a blue square", color=(0, 0, 255), shape="square"
    )
    return red, blue


def _documents(how: str, path: Path) -> list:
    """One picture's documents, the ways a user gets them, made cache-safe where needed."""
    if how == "as-installed":
        return load(files=[path], reader="as-installed")
    if how == "image-reader":
        return list(label_media(load(files=[path], reader="image-reader")))
    data = base64.b64encode(path.read_bytes()).decode()
    return list(label_media([ImageDocument(image=data, image_mimetype="image/png")]))


@pytest.mark.parametrize("how", [AS_INSTALLED, "image-reader", "in-memory"])
def test_cached_pipeline_gives_each_picture_its_own_vector(
    emulator: Emulator, tmp_path: Path, embed_model: GeminiMultiModalEmbedding, how: str
) -> None:
    red, blue = _two_pictures(tmp_path)
    want_red, want_blue = direct(emulator, red, blue)
    assert want_red != pytest.approx(want_blue)
    for parser in (False, True):
        pipeline = _pipeline(embed_model, parser, cache=IngestionCache())
        got: dict[str, list[list[float]]] = {"red": [], "blue": []}
        for round_ in range(2):  # the second round comes from the cache
            for name, path in (("red", red), ("blue", blue)):
                emulator.reset_stats()
                nodes = pipeline.run(documents=_documents(how, path))
                assert len(nodes) == 1
                assert emulator.stats.items == (1 if round_ == 0 else 0), (name, round_, parser)
                got[name].append(nodes[0].embedding)
        assert got["red"] == [pytest.approx(want_red)] * 2, parser
        assert got["blue"] == [pytest.approx(want_blue)] * 2, parser


@pytest.mark.parametrize("how", [AS_INSTALLED, "image-reader"])
def test_an_edited_file_at_the_same_path_gets_a_fresh_vector(
    emulator: Emulator, tmp_path: Path, embed_model: GeminiMultiModalEmbedding, how: str
) -> None:
    path = samples.make_png(tmp_path / "photo.png", "a red circle", color=(255, 0, 0))
    pipeline = _pipeline(embed_model, parser=False, cache=IngestionCache())
    before = pipeline.run(documents=_documents(how, path))[0].embedding
    samples.make_png(path, "a green triangle", color=(0, 200, 0), shape="triangle")
    emulator.reset_stats()
    after = pipeline.run(documents=_documents(how, path))[0].embedding
    assert emulator.stats.items == 1
    assert after == pytest.approx(direct(emulator, path)[0])
    assert after != pytest.approx(before)


@pytest.mark.parametrize("parser", [False, True], ids=["embed-only", "with-parser"])
@pytest.mark.parametrize("how", ["image-reader", "in-memory"])
async def test_media_the_cache_cannot_tell_apart_is_refused(
    emulator: Emulator,
    tmp_path: Path,
    embed_model: GeminiMultiModalEmbedding,
    how: str,
    parser: bool,
) -> None:
    """An ImageDocument with no text keys IngestionPipeline's cache on "": refused
    before any call (sync and async), with the fixes named; either fix works."""
    red, blue = _two_pictures(tmp_path)

    def raw(path: Path) -> list:
        if how == "image-reader":
            return load(files=[path], reader="image-reader")
        return [ImageDocument(image=base64.b64encode(path.read_bytes()).decode())]

    pipeline = _pipeline(embed_model, parser, cache=IngestionCache())
    with pytest.raises(InputError, match="label_media") as info:
        pipeline.run(documents=raw(red))
    assert "disable_cache=True" in str(info.value)
    if how == "image-reader":
        assert str(red) in str(info.value)
    with pytest.raises(InputError, match="label_media"):
        await pipeline.arun(documents=raw(blue))
    assert emulator.stats.requests == 0

    # without the cache nothing can be mixed up: each picture gets its own vector
    uncached = _pipeline(embed_model, parser, disable_cache=True)
    vectors = [uncached.run(documents=raw(p))[0].embedding for p in (red, blue)]
    assert vectors == [pytest.approx(v) for v in direct(emulator, red, blue)]


def test_a_docstore_skips_unchanged_images_on_a_rerun(
    emulator: Emulator, folder: Path, embed_model: GeminiMultiModalEmbedding
) -> None:
    """IngestionPipeline's document management keeps each input document's hash: the
    embedding labels copies, not the user's documents, so a re-run skips unchanged
    images instead of paying for them again."""
    pipeline = IngestionPipeline(
        transformations=[embed_model],
        docstore=SimpleDocumentStore(),
        vector_store=SimpleVectorStore(),
        disable_cache=True,
    )
    first = pipeline.run(
        documents=SimpleDirectoryReader(str(folder), filename_as_id=True).load_data()
    )
    kinds = sorted(part_kind(c["parts"][0]) for c in sent_contents(emulator))
    assert kinds == ["image/jpeg", "image/png", "text"]
    assert sorted(n.get_content() for n in first)[1:] == [
        "[image] red_circle.png",
        "[image] yellow_star.jpg",
    ]
    emulator.reset_stats()
    again = pipeline.run(
        documents=SimpleDirectoryReader(str(folder), filename_as_id=True).load_data()
    )
    assert (emulator.stats.requests, len(again)) == (0, 0)

"""GeminiMultiModalEmbedding: LlamaIndex's embedding methods and the node step,
over real HTTP to the emulator with the unmodified google-genai SDK."""

from __future__ import annotations

import base64
import hashlib
import logging
import math
import pickle
from io import BytesIO
from pathlib import Path

import numpy as np
import pytest
from li_helpers import DIMS, part_bytes, part_kind, sent_contents
from llama_index.core.schema import (
    Document,
    ImageNode,
    MediaResource,
    Node,
    TextNode,
)
from PIL import Image

from gemb2 import (
    ConfigError,
    Embedder,
    EmbedSettings,
    InputError,
    LimitExceededError,
    MediaReadError,
    RetryExhaustedError,
    VectorCache,
)
from gemb2.ingest.pieces import PIECES
from gemb2.inputs.probe import av_info, pdf_page_count
from gemb2.testing import samples
from gemb2.testing.emulator import Emulator
from llamaindex_gemb2 import GeminiMediaNodeParser, GeminiMediaReader, GeminiMultiModalEmbedding

SECRET = "AIzaSy-LLAMA-SECRET-0042"


def cos(a: list[float], b: list[float]) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_text_query_and_image_embeddings(
    embed_model: GeminiMultiModalEmbedding, emulator: Emulator, media_dir: Path
) -> None:
    text = embed_model.get_text_embedding("a red circle")
    query = embed_model.get_query_embedding("red circle")
    red = embed_model.get_image_embedding(str(media_dir / "red_circle.png"))
    blue = embed_model.get_image_embedding(str(media_dir / "blue_square.png"))
    for v in (text, query, red, blue):
        assert len(v) == DIMS
        assert all(isinstance(x, float) for x in v)
        assert math.isclose(float(np.linalg.norm(v)), 1.0, rel_tol=1e-6)
    assert cos(query, red) > cos(query, blue) + 0.2
    sent = sent_contents(emulator)
    assert sent[0]["parts"] == [{"text": "title: none | text: a red circle"}]
    assert sent[1]["parts"] == [{"text": "task: search result | query: red circle"}]
    assert [part_kind(p) for p in sent[2]["parts"]] == ["image/png"]
    assert part_bytes(sent[2]["parts"][0]) == (media_dir / "red_circle.png").read_bytes()
    assert emulator.stats.requests == 4
    assert embed_model.usage.items == 4


def test_image_inputs_of_every_llamaindex_kind(
    embed_model: GeminiMultiModalEmbedding, media_dir: Path
) -> None:
    path = media_dir / "red_circle.png"
    by_path = embed_model.get_image_embedding(str(path))
    by_bytesio = embed_model.get_image_embedding(BytesIO(path.read_bytes()))
    with Image.open(path) as img:
        by_pil = embed_model.get_image_embedding(img.copy())  # type: ignore[arg-type]
    assert by_bytesio == pytest.approx(by_path)
    assert len(by_pil) == DIMS  # re-encoded pixels lose the PNG text, so only the shape
    # any media the model takes goes through the image methods
    video = embed_model.get_image_embedding(str(media_dir / "waves.mp4"))
    assert cos(embed_model.get_query_embedding("ocean waves at a beach"), video) > cos(
        embed_model.get_query_embedding("ocean waves at a beach"), by_path
    )


async def test_async_twins_match_sync(
    embed_model: GeminiMultiModalEmbedding, emulator: Emulator, media_dir: Path
) -> None:
    image = str(media_dir / "blue_square.png")
    sync = [
        embed_model.get_text_embedding("glaciers carve valleys"),
        embed_model.get_query_embedding("glaciers"),
        embed_model.get_image_embedding(image),
    ]
    emulator.reset_stats()
    got = [
        await embed_model.aget_text_embedding("glaciers carve valleys"),
        await embed_model.aget_query_embedding("glaciers"),
        await embed_model.aget_image_embedding(image),
    ]
    for a, b in zip(sync, got, strict=True):
        assert a == pytest.approx(b)
    assert emulator.stats.requests == 3
    batch = await embed_model.aget_text_embedding_batch(["one", "two", "three"])
    assert len(batch) == 3
    images = await embed_model.aget_image_embedding_batch([image, image])
    assert images[0] == pytest.approx(sync[2])


def test_batches_go_through_the_core(
    embed_model: GeminiMultiModalEmbedding, emulator: Emulator, media_dir: Path
) -> None:
    texts = [f"sentence number {i} about item {i}" for i in range(250)]
    vectors = embed_model.get_text_embedding_batch(texts)
    assert len(vectors) == 250
    # LlamaIndex hands all 250 over at once; the core cuts them into 100/100/50
    sizes = sorted(len(b["requests"]) for b in emulator.stats.last_bodies)
    assert sizes == [50, 100, 100]
    assert vectors[7] == pytest.approx(embed_model.get_text_embedding(texts[7]))

    emulator.reset_stats()
    paths = [str(media_dir / n) for n in ("red_circle.png", "blue_square.png", "piano.wav")]
    got = embed_model.get_image_embedding_batch(paths)
    assert emulator.stats.requests == 1
    assert emulator.stats.items == 3
    assert got[1] == pytest.approx(embed_model.get_image_embedding(paths[1]))


def test_serialised_forms_hold_no_secret(
    emulator: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    model = GeminiMultiModalEmbedding(
        api_key=SECRET, base_url=emulator.base_url, dimensions=DIMS, api_key_env="MY_KEY"
    )
    assert model.class_name() == "GeminiMultiModalEmbedding"
    model.get_text_embedding("hello")
    emulator.configure(fault_rate=1.0, faults=("500",))
    failing = GeminiMultiModalEmbedding(
        api_key=SECRET, base_url=emulator.base_url, max_retries=1, backoff_initial=0
    )
    with pytest.raises(Exception) as info:
        failing.get_text_embedding("hello")
    forms = [
        repr(model),
        str(model),
        model.to_json(),
        str(model.to_dict()),
        model.model_dump_json(),
        str(model.to_payload()),
        str(pickle.dumps(model)),
        repr(info.value),
        str(info.value),
        caplog.text,
    ]
    for form in forms:
        assert SECRET not in form
    data = model.to_dict()
    assert data["class_name"] == "GeminiMultiModalEmbedding"
    assert data["api_key_env"] == "MY_KEY"
    assert data["dimensions"] == DIMS
    assert "api_key" not in data


def test_round_trip_and_shared_settings(emulator: Emulator) -> None:
    model = GeminiMultiModalEmbedding(
        base_url=emulator.base_url, dimensions=DIMS, task="clustering"
    )
    again = GeminiMultiModalEmbedding.from_dict(model.to_dict())
    assert (again.model_name, again.dimensions, again.task) == (
        "gemini-embedding-2",
        DIMS,
        "clustering",
    )
    assert again.get_text_embedding("x y z") == pytest.approx(model.get_text_embedding("x y z"))

    settings = EmbedSettings(
        base_url=emulator.base_url, dimensions=128, normalize=False, batch_size=2
    )
    shared = GeminiMultiModalEmbedding(settings=settings)
    assert shared.dimensions == 128
    emulator.reset_stats()
    assert len(shared.get_text_embedding_batch(["a", "b", "c"])) == 3
    assert emulator.stats.requests == 2  # the shared settings' batch size holds
    assert shared.normalize is False
    assert shared.embedder.settings.base_url == emulator.base_url
    assert len(shared.get_query_embedding("q")) == 128

    full = GeminiMultiModalEmbedding(base_url=emulator.base_url)
    assert full.dimensions == 3072  # the model's default, stated rather than left None
    with pytest.raises(ConfigError, match="dimensions=64"):
        GeminiMultiModalEmbedding(base_url=emulator.base_url, dimensions=64)


def _mixed_nodes(media_dir: Path) -> list:
    png = media_dir / "red_circle.png"
    wav = media_dir / "piano.wav"
    return [
        TextNode(text="glaciers carve valleys"),
        ImageNode(image_path=str(png)),
        ImageNode(image=base64.b64encode((media_dir / "blue_square.png").read_bytes()).decode()),
        Node(audio_resource=MediaResource(data=wav.read_bytes(), mimetype="audio/wav")),
        Node(video_resource=MediaResource(path=media_dir / "waves.mp4")),
        TextNode(text="", metadata={"file_path": str(media_dir / "three_pages.pdf")}),
        Node(image_resource=MediaResource(path=media_dir / "yellow_star.jpg")),
    ]


EXPECTED_KINDS = [
    ["text"],
    ["image/png"],
    ["image/png"],
    ["audio/wav"],
    ["video/mp4"],
    ["application/pdf"],
    ["image/jpeg"],
]


def test_call_embeds_what_each_node_holds(
    embed_model: GeminiMultiModalEmbedding, emulator: Emulator, media_dir: Path
) -> None:
    nodes = _mixed_nodes(media_dir)
    out = embed_model(nodes)
    # vectors are set in place; a media node without text comes back as a labelled copy
    # (its input keeps its content, and so the hash a docstore keeps for it)
    assert [n.node_id for n in out] == [n.node_id for n in nodes]
    assert [n.embedding for n in out] == [n.embedding for n in nodes]
    assert [n.get_content() for n in out] == [
        "glaciers carve valleys",
        "[image] red_circle.png",
        f"[image] {hashlib.sha256((media_dir / 'blue_square.png').read_bytes()).hexdigest()[:12]}",
        f"[audio] {hashlib.sha256((media_dir / 'piano.wav').read_bytes()).hexdigest()[:12]}",
        "[video] waves.mp4",
        "[pdf] three_pages.pdf",
        "[image] yellow_star.jpg",
    ]
    assert out[0] is nodes[0] and nodes[1].get_content() == ""
    assert emulator.stats.requests == 1
    assert emulator.stats.items == len(nodes)
    sent = sent_contents(emulator)
    assert [[part_kind(p) for p in c["parts"]] for c in sent] == EXPECTED_KINDS
    assert part_bytes(sent[3]["parts"][0]) == (media_dir / "piano.wav").read_bytes()
    assert part_bytes(sent[5]["parts"][0]) == (media_dir / "three_pages.pdf").read_bytes()
    # each vector is the one of its own media, not of the empty text LlamaIndex would send
    direct = Embedder(base_url=emulator.base_url, dimensions=DIMS).embed(
        [
            "glaciers carve valleys",
            media_dir / "red_circle.png",
            media_dir / "blue_square.png",
            media_dir / "piano.wav",
            media_dir / "waves.mp4",
            media_dir / "three_pages.pdf",
            media_dir / "yellow_star.jpg",
        ]
    )
    for node, vector in zip(nodes, direct, strict=True):
        assert node.embedding == pytest.approx(vector)
    assert len({tuple(round(x, 6) for x in n.embedding) for n in nodes}) == len(nodes)


def test_reader_documents_embed_as_media_without_the_parser(
    embed_model: GeminiMultiModalEmbedding, emulator: Emulator, media_dir: Path
) -> None:
    docs = GeminiMediaReader().load_data([media_dir / "red_circle.png", media_dir / "piano.wav"])
    embed_model(docs)
    assert [[part_kind(p) for p in c["parts"]] for c in sent_contents(emulator)] == [
        ["image/png"],
        ["audio/wav"],
    ]


async def test_acall_matches_call(
    embed_model: GeminiMultiModalEmbedding, emulator: Emulator, media_dir: Path
) -> None:
    sync_nodes = embed_model(_mixed_nodes(media_dir))
    emulator.reset_stats()
    async_nodes = await embed_model.acall(_mixed_nodes(media_dir))
    assert emulator.stats.items == len(async_nodes)
    for a, b in zip(sync_nodes, async_nodes, strict=True):
        assert a.embedding == pytest.approx(b.embedding)


def test_caption_is_interleaved_only_when_asked(emulator: Emulator, media_dir: Path) -> None:
    node = ImageNode(
        text="a photo of a round red thing", image_path=str(media_dir / "red_circle.png")
    )
    plain = GeminiMultiModalEmbedding(base_url=emulator.base_url, dimensions=DIMS)
    plain([node])
    assert [part_kind(p) for p in sent_contents(emulator)[-1]["parts"]] == ["image/png"]
    mixed = GeminiMultiModalEmbedding(
        base_url=emulator.base_url, dimensions=DIMS, interleave_text=True
    )
    mixed([node.model_copy()])
    last = sent_contents(emulator)[-1]["parts"]
    assert [part_kind(p) for p in last] == ["text", "image/png"]
    assert last[0]["text"] == "a photo of a round red thing"  # media inputs get no prefix


def test_bad_media_fails_before_any_call(
    embed_model: GeminiMultiModalEmbedding, emulator: Emulator, tmp_path: Path
) -> None:
    missing = ImageNode(image_path=str(tmp_path / "gone.png"))
    with pytest.raises(MediaReadError, match="no such file"):
        embed_model([TextNode(text="fine"), missing])
    seven = samples.make_pdf(tmp_path / "seven.pdf", [f"page {i}" for i in range(7)])
    with pytest.raises(LimitExceededError, match="7 pages"):
        embed_model([TextNode(text="", metadata={"file_path": str(seven)})])
    with pytest.raises(InputError, match="text is empty"):
        embed_model.get_text_embedding_batch(["ok", ""])
    assert emulator.stats.requests == 0


def test_pieces_are_cut_again_when_not_remembered(
    embed_model: GeminiMultiModalEmbedding, emulator: Emulator, corpus: Path
) -> None:
    parser = GeminiMediaNodeParser()
    docs = [
        Document(text="video", metadata={"file_path": str(corpus / "boat.mp4")}),
        Document(text="book", metadata={"file_path": str(corpus / "book.pdf")}),
    ]
    nodes = parser(docs)
    assert len(nodes) == 5 and len(PIECES) == 5
    remembered = [n.embedding for n in embed_model([n.model_copy() for n in nodes])]
    first = sent_contents(emulator)
    PIECES.clear()  # as in another process: the embedding must cut the same pieces
    emulator.reset_stats()
    again = [n.embedding for n in embed_model(nodes)]
    for a, b in zip(remembered, again, strict=True):
        assert a == pytest.approx(b)
    second = sent_contents(emulator)
    assert [part_bytes(c["parts"][0]) for c in first] == [part_bytes(c["parts"][0]) for c in second]
    durations = [av_info(part_bytes(c["parts"][0])).duration for c in second[:2]]
    assert all(d < 120 for d in durations) and sum(durations) >= 180
    assert [pdf_page_count(part_bytes(c["parts"][0])) for c in second[2:]] == [6, 6, 2]


def test_a_file_changed_after_parsing_is_refused(
    embed_model: GeminiMultiModalEmbedding, emulator: Emulator, tmp_path: Path
) -> None:
    png = samples.make_png(tmp_path / "pic.png", "a red circle", color=(255, 0, 0))
    nodes = GeminiMediaNodeParser()([Document(text="pic", metadata={"file_path": str(png)})])
    samples.make_png(png, "a green triangle", color=(0, 200, 0), shape="triangle")
    with pytest.raises(InputError, match="changed since it was split"):
        embed_model(nodes)
    assert emulator.stats.requests == 0


def test_core_cache_serves_media_repeats(emulator: Emulator, media_dir: Path) -> None:
    cache = VectorCache()
    model = GeminiMultiModalEmbedding(base_url=emulator.base_url, dimensions=DIMS, cache=cache)
    first = model(_mixed_nodes(media_dir))
    assert emulator.stats.items == 7
    emulator.reset_stats()
    second = model(_mixed_nodes(media_dir))
    assert emulator.stats.requests == 0
    assert model.usage.cached == 7
    for a, b in zip(first, second, strict=True):
        assert a.embedding == pytest.approx(b.embedding)


def test_retries_surface_as_core_errors(emulator: Emulator) -> None:
    emulator.configure(fault_rate=1.0, faults=("503",))
    model = GeminiMultiModalEmbedding(
        base_url=emulator.base_url, dimensions=DIMS, max_retries=1, backoff_initial=0
    )
    with pytest.raises(RetryExhaustedError) as info:
        model.get_query_embedding("anything")
    assert info.value.code == 503
    assert emulator.stats.requests == 2

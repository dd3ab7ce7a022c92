"""The emulator over real HTTP, driven by the real google-genai SDK (and raw httpx where the
SDK would refuse to send a shape), so client code tested against it meets Google's wire format."""

from __future__ import annotations

import base64
import io
import json
import logging
import os
import random
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types
from google.oauth2.credentials import Credentials
from PIL import Image, ImageDraw
from PIL.PngImagePlugin import PngInfo

from gemb2.model.catalog import get_model
from gemb2.testing.emulator import Emulator, EmulatorConfig
from gemb2.testing.emulator.contents import MediaCache, VectorCache, parse_item
from gemb2.testing.emulator.vectors import content_vector
from gemb2.transport.genai import SDK_VERSION, VERTEX_BATCH_SDK

MODEL = "gemini-embedding-2"
SECRET = "AIzaSy-EMULATOR-TEST-SECRET-42"


# --- media made on the spot --------------------------------------------------------------------


def png_bytes(description: str, color: tuple[int, int, int] = (255, 0, 0)) -> bytes:
    img = Image.new("RGB", (32, 32), "white")
    ImageDraw.Draw(img).ellipse((4, 4, 28, 28), fill=color)
    info = PngInfo()
    info.add_text("Description", description)
    buf = io.BytesIO()
    img.save(buf, "PNG", pnginfo=info)
    return buf.getvalue()


def jpeg_bytes(description: str, color: tuple[int, int, int] = (255, 220, 0)) -> bytes:
    img = Image.new("RGB", (32, 32), color)
    exif = Image.Exif()
    exif[0x010E] = description
    buf = io.BytesIO()
    img.save(buf, "JPEG", exif=exif)
    return buf.getvalue()


def pdf_bytes(pages: list[str]) -> bytes:
    """A minimal valid PDF with one line of Helvetica text per page."""
    n = len(pages)
    font = 3 + 2 * n
    objs = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        f"<< /Type /Pages /Kids [{' '.join(f'{3 + 2 * i} 0 R' for i in range(n))}] "
        f"/Count {n} >>".encode(),
    ]
    for i, text in enumerate(pages):
        stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
        objs.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents {4 + 2 * i} 0 R "
            f"/Resources << /Font << /F1 {font} 0 R >> >> >>".encode()
        )
        objs.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
    objs.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for k, body in enumerate(objs, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % k + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1)
    for off in offsets:
        out += b"%010d 00000 n \n" % off
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objs) + 1, xref)
    return bytes(out)


def wav_bytes(seconds: float, title: str = "", rate: int = 8000) -> bytes:
    import av

    buf = io.BytesIO()
    with av.open(buf, "w", format="wav") as c:
        if title:
            c.metadata["title"] = title
        stream = c.add_stream("pcm_s16le", rate=rate, layout="mono")
        t = np.arange(int(seconds * rate)) / rate
        samples = (np.sin(2 * np.pi * 440 * t) * 3000).astype(np.int16).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
        frame.rate = rate
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            c.mux(packet)
    return buf.getvalue()


def mp4_bytes(seconds: int, comment: str = "", fps: int = 2) -> bytes:
    import av

    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as c:
        if comment:
            c.metadata["comment"] = comment
        stream = c.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 16, 16, "yuv420p"
        for i in range(seconds * fps):
            arr = np.full((16, 16, 3), (i * 7) % 255, dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(arr, format="rgb24")):
                c.mux(packet)
        for packet in stream.encode(None):
            c.mux(packet)
    return buf.getvalue()


# --- helpers -----------------------------------------------------------------------------------


def text_content(text: str) -> types.Content:
    return types.Content(parts=[types.Part(text=text)])


def media_content(data: bytes, mime: str, caption: str | None = None) -> types.Content:
    parts = [types.Part(text=caption)] if caption else []
    parts.append(types.Part.from_bytes(data=data, mime_type=mime))
    return types.Content(parts=parts)


def embed(
    client: genai.Client, contents: list[types.Content], dims: int | None = None, **kw: Any
) -> list[np.ndarray]:
    cfg = types.EmbedContentConfig(output_dimensionality=dims, **kw)
    resp = client.models.embed_content(model=MODEL, contents=contents, config=cfg)
    assert resp.embeddings is not None
    return [np.asarray(e.values, dtype=np.float64) for e in resp.embeddings]


def cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def query(text: str) -> str:
    return f"task: search result | query: {text}"


def doc(text: str, title: str = "none") -> str:
    return f"title: {title} | text: {text}"


def raw_post(emu: Emulator, path: str, body: Any, **headers: str) -> httpx.Response:
    with httpx.Client(base_url=emu.base_url, timeout=30) as http:
        return http.post(path, json=body, headers={"x-goog-api-key": SECRET, **headers})


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@pytest.fixture
def client(emulator: Emulator) -> Iterator[genai.Client]:
    c = genai.Client(api_key=SECRET, http_options=types.HttpOptions(base_url=emulator.base_url))
    yield c
    c.close()


@pytest.fixture
def vertex(emulator: Emulator) -> Iterator[genai.Client]:
    """Vertex AI mode: a ready token stands in for Google credentials, so nothing is fetched."""
    c = genai.Client(
        vertexai=True,
        project="demo-project",
        location="us-central1",
        credentials=Credentials(token="vertex-test-token"),
        http_options=types.HttpOptions(base_url=emulator.base_url),
    )
    yield c
    c.close()


# --- vectors -----------------------------------------------------------------------------------


def test_three_contents_give_three_normalised_vectors(
    emulator: Emulator, client: genai.Client
) -> None:
    texts = ["a cat sat on the mat", "the stock market fell", "rain over the mountains"]
    vecs = embed(client, [text_content(t) for t in texts])
    assert [len(v) for v in vecs] == [3072, 3072, 3072]
    assert [round(float(np.linalg.norm(v)), 4) for v in vecs] == [1.0, 1.0, 1.0]
    assert emulator.stats.requests == 1
    assert emulator.stats.items == 3
    body = emulator.stats.last_bodies[-1]
    assert [r["content"]["parts"][0]["text"] for r in body["requests"]] == texts
    assert {r["model"] for r in body["requests"]} == {f"models/{MODEL}"}


def test_smaller_dimension_is_a_prefix_and_not_normalised(client: genai.Client) -> None:
    full = embed(client, [text_content("volcanoes erupt lava")])[0]
    small = embed(client, [text_content("volcanoes erupt lava")], dims=768)[0]
    assert len(small) == 768
    assert 0.5 < np.linalg.norm(small) < 0.98
    np.testing.assert_allclose(small, full[:768], atol=1e-6)


def test_same_text_same_vector_and_shared_words_are_closer(client: genai.Client) -> None:
    a, a2, b, c = embed(
        client,
        [
            text_content("The cat sat on the mat"),
            text_content("The cat sat on the mat"),
            text_content("A cat was sitting on a mat"),
            text_content("Quarterly profits of the bank rose sharply"),
        ],
    )
    np.testing.assert_array_equal(a, a2)
    assert cos(a, b) > 0.4
    assert abs(cos(a, c)) < 0.2
    assert cos(a, b) > cos(a, c) + 0.3


def test_query_prefix_and_document_prefix_are_stripped(
    emulator: Emulator, client: genai.Client
) -> None:
    q, d_close, d_far = embed(
        client,
        [
            text_content(query("how do volcanoes erupt")),
            text_content(doc("volcanoes erupt with lava and ash", title="Volcano")),
            text_content(doc("honeybees make honey from nectar")),
        ],
    )
    assert cos(q, d_close) > 0.4
    assert cos(q, d_close) > cos(q, d_far) + 0.3
    assert emulator.stats.tasks == {"search result": 1, "document": 2}


def test_models_have_separate_spaces(client: genai.Client) -> None:
    cfg = types.EmbedContentConfig(task_type="RETRIEVAL_DOCUMENT")
    old = client.models.embed_content(
        model="gemini-embedding-001", contents=[text_content("cats and dogs")], config=cfg
    )
    assert old.embeddings is not None
    v_old = np.asarray(old.embeddings[0].values)
    v_new = embed(client, [text_content("cats and dogs")])[0]
    assert abs(cos(v_old, v_new)) < 0.2


def test_the_retired_preview_id_is_not_found(client: genai.Client) -> None:
    """gemini-embedding-2-preview was shut down on 2026-08-10: the service answers 404."""
    with pytest.raises(genai_errors.ClientError) as info:
        client.models.embed_content(
            model="gemini-embedding-2-preview", contents=[text_content("cats and dogs")]
        )
    assert info.value.code == 404 and "gemini-embedding-2-preview" in str(info.value.message)


def _topic_texts() -> list[str]:
    topics = [
        "ocean wave tide beach sand coral reef salt shore surf",
        "planet star galaxy orbit rocket moon telescope comet nebula astronaut",
        "recipe oven flour butter sugar bake dough kitchen spice sauce",
        "guitar piano melody rhythm song chord drum concert singer note",
        "stock market bond interest bank loan investor price trade profit",
        "flower soil seed garden plant tomato rose water leaf compost",
        "goal team player match referee league stadium ball coach score",
        "code software compiler bug server database python memory cpu network",
        "doctor patient hospital vaccine disease nurse surgery drug symptom clinic",
        "flight airport hotel passport luggage train ticket tourist map journey",
    ]
    filler = ["people", "often", "think", "many", "things", "every", "day", "walking", "town"]
    rng = random.Random(1)
    texts = []
    for topic in topics:
        for _ in range(5):
            words = rng.sample(topic.split(), 4) + rng.sample(filler, 3)
            rng.shuffle(words)
            texts.append(" ".join(words))
    return texts


def _top5(m: np.ndarray) -> list[set[int]]:
    m = m / np.linalg.norm(m, axis=1, keepdims=True)
    sims = m @ m.T
    np.fill_diagonal(sims, -np.inf)
    return [set(np.argsort(-row)[:5].tolist()) for row in sims]


def test_matryoshka_truncation_keeps_neighbours(client: genai.Client) -> None:
    texts = _topic_texts()
    full = np.stack(embed(client, [text_content(t) for t in texts]))
    top_full = _top5(full)
    overlap = {
        d: float(
            np.mean([len(a & b) / 5 for a, b in zip(top_full, _top5(full[:, :d]), strict=True)])
        )
        for d in (256, 768)
    }
    assert overlap[768] >= 0.85, overlap
    assert overlap[256] >= 0.75, overlap
    # the leading dimensions hold most of the energy (uniform spread would give ~0.29 and 0.5)
    assert float(np.linalg.norm(full[:, :256], axis=1).mean()) > 0.6
    assert float(np.linalg.norm(full[:, :768], axis=1).mean()) > 0.85


def test_vectors_are_fast_enough() -> None:
    spec = get_model(MODEL)
    cache = MediaCache()
    texts = [query(f"short text {i} about topic {i % 37} and word{i % 101}") for i in range(5000)]
    start = time.process_time()
    for i, t in enumerate(texts):
        item = parse_item(i, {"content": {"parts": [{"text": t}]}}, spec, 3072, cache)
        content_vector(MODEL, item.parts, item.identity)
    assert time.process_time() - start < 5.0


def test_vector_cache_answers_what_it_would_compute_and_stays_in_its_bytes() -> None:
    spec = get_model(MODEL)
    media = MediaCache()

    def item(text: str, dims: int) -> Any:
        request = {"content": {"parts": [{"text": text}]}, "outputDimensionality": dims}
        return parse_item(0, request, spec, 3072, media)

    cache = VectorCache(max_bytes=3 * 768 * 4)  # three 768-d vectors
    first = cache.values(item("volcanoes erupt lava", 768), MODEL)
    again = cache.values(item("volcanoes erupt lava", 768), MODEL)
    assert again is first and len(cache) == 1  # a hit: the same array
    np.testing.assert_array_equal(first, item("volcanoes erupt lava", 768).values(MODEL))
    assert not first.flags.writeable  # shared by every answer: nobody may change it
    wider = cache.values(item("volcanoes erupt lava", 1536), MODEL)
    assert len(wider) == 1536 and len(cache) == 2  # dims are part of the key
    np.testing.assert_allclose(wider[:768], first, atol=1e-6)
    other = cache.values(item("a quiet harbour", 768), MODEL)
    assert not np.allclose(other, first)
    assert len(cache) == 2  # 768 + 1536 + 768 values are over three 768s: the oldest went
    assert cache.values(item("volcanoes erupt lava", 768), MODEL) is not first


# --- media -------------------------------------------------------------------------------------


def test_png_caption_is_found_by_text_query(client: genai.Client) -> None:
    png = png_bytes("a red circle")
    image, red, blue = embed(
        client,
        [
            media_content(png, "image/png"),
            text_content(query("red circle")),
            text_content(query("blue square")),
        ],
    )
    assert cos(image, red) > 0.6
    assert cos(image, red) > cos(image, blue) + 0.4


def test_jpeg_pdf_audio_video_carry_their_text(client: genai.Client) -> None:
    contents = [
        media_content(jpeg_bytes("a yellow star"), "image/jpeg"),
        media_content(
            pdf_bytes(["volcanoes erupt lava", "glaciers carve valleys"]), "application/pdf"
        ),
        media_content(wav_bytes(2, title="a piano playing a single note"), "audio/wav"),
        media_content(mp4_bytes(2, comment="ocean waves at a beach"), "video/mp4"),
    ]
    queries = ["yellow star", "volcano lava glacier", "piano note", "ocean waves beach"]
    media = embed(client, contents)
    texts = embed(client, [text_content(query(q)) for q in queries])
    sims = np.array([[cos(m, t) for t in texts] for m in media])
    assert sims.argmax(axis=1).tolist() == [0, 1, 2, 3], sims.round(2)
    assert sims.diagonal().min() > 0.5


def test_interleaved_content_and_snake_or_camel_parts(emulator: Emulator) -> None:
    png = png_bytes("a red circle")
    snake = {"text": "my drawing"}, {"inline_data": {"mime_type": "image/png", "data": b64(png)}}
    camel = {"text": "my drawing"}, {"inlineData": {"mimeType": "image/png", "data": b64(png)}}
    url = f"/v1beta/models/{MODEL}:batchEmbedContents"
    answers = [
        raw_post(emulator, url, {"requests": [{"content": {"parts": list(parts)}}]})
        for parts in (snake, camel)
    ]
    assert [r.status_code for r in answers] == [200, 200]
    v1, v2 = (np.asarray(r.json()["embeddings"][0]["values"]) for r in answers)
    np.testing.assert_array_equal(v1, v2)
    alone = raw_post(emulator, url, {"requests": [{"content": {"parts": [snake[1]]}}]}).json()[
        "embeddings"
    ][0]["values"]
    assert 0.3 < cos(v1, np.asarray(alone)) < 0.95  # the caption moved the vector


def test_file_data_uri_is_hashed(emulator: Emulator, client: genai.Client) -> None:
    uri_a = "https://generativelanguage.googleapis.com/v1beta/files/abc"
    uri_b = "https://generativelanguage.googleapis.com/v1beta/files/xyz"
    a, a2, b = embed(
        client,
        [
            types.Content(parts=[types.Part.from_uri(file_uri=uri_a, mime_type="video/mp4")]),
            types.Content(parts=[types.Part.from_uri(file_uri=uri_a, mime_type="video/mp4")]),
            types.Content(parts=[types.Part.from_uri(file_uri=uri_b, mime_type="video/mp4")]),
        ],
    )
    np.testing.assert_array_equal(a, a2)
    assert cos(a, b) < 0.5
    assert emulator.stats.last_bodies[-1]["requests"][0]["content"]["parts"][0]["file_data"] == {
        "file_uri": uri_a,
        "mime_type": "video/mp4",
    }


# --- limits and errors -------------------------------------------------------------------------


def _client_error(fn: Any, *args: Any, **kw: Any) -> genai_errors.APIError:
    with pytest.raises(genai_errors.APIError) as info:
        fn(*args, **kw)
    return info.value


def test_unknown_model_is_404(emulator: Emulator, client: genai.Client) -> None:
    err = _client_error(
        client.models.embed_content, model="no-such-model", contents=[text_content("x")]
    )
    assert isinstance(err, genai_errors.ClientError)
    assert (err.code, err.status) == (404, "NOT_FOUND")
    resp = raw_post(emulator, "/v1beta/models/no-such-model:batchEmbedContents", {"requests": []})
    assert resp.status_code == 404
    assert set(resp.json()) == {"error"}
    assert set(resp.json()["error"]) == {"code", "message", "status"}
    assert resp.json()["error"]["code"] == 404
    assert SECRET not in resp.text
    with httpx.Client(base_url=emulator.base_url) as http:
        assert http.get(f"/v1beta/models/{MODEL}").json()["name"] == f"models/{MODEL}"
        assert http.get("/v1beta/models/no-such-model").status_code == 404
    assert emulator.stats.requests == 2  # embedding routes only, the 404s included


def test_over_batch_is_400_with_google_message(emulator: Emulator) -> None:
    body = {
        "requests": [
            {"model": f"models/{MODEL}", "content": {"parts": [{"text": f"t{i}"}]}}
            for i in range(101)
        ]
    }
    resp = raw_post(emulator, f"/v1beta/models/{MODEL}:batchEmbedContents", body)
    assert resp.status_code == 400
    error = resp.json()["error"]
    assert error["code"] == 400
    assert error["status"] == "INVALID_ARGUMENT"
    assert "at most 100 requests can be in one batch" in error["message"]
    assert emulator.stats.items == 0
    ok = raw_post(
        emulator, f"/v1/models/{MODEL}:batchEmbedContents", {"requests": body["requests"][:100]}
    )
    assert ok.status_code == 200
    assert len(ok.json()["embeddings"]) == 100


def test_seven_images_in_one_content_is_400(client: genai.Client) -> None:
    png = png_bytes("a dot")
    content = types.Content(
        parts=[types.Part.from_bytes(data=png, mime_type="image/png") for _ in range(7)]
    )
    ok = types.Content(parts=content.parts[:6])  # type: ignore[index]
    err = _client_error(embed, client, [text_content("fine"), ok, content])
    assert (err.code, err.status) == (400, "INVALID_ARGUMENT")
    assert "request 2" in (err.message or "")
    assert "7 image" in (err.message or "")
    assert len(embed(client, [ok])) == 1


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("empty_text", "text is empty"),
        ("no_parts", "no parts"),
        ("too_many_tokens", "tokens"),
        ("corrupt_png", "cannot read image/png"),
        ("gif", "unsupported mime type"),
        ("two_pdfs", "2 pdf parts"),
        ("seven_pages", "7 pages"),
        ("long_audio", "audio is 81.0 s"),
        ("long_video", "video is 125.0 s"),
        ("bad_dimension", "outputDimensionality 64"),
        ("bad_task", "invalid taskType"),
        ("media_to_001", "accepts text only"),
        ("bad_base64", "not valid base64"),
    ],
)
def test_limits_are_enforced_per_request(emulator: Emulator, case: str, reason: str) -> None:
    pdf = {"inline_data": {"mime_type": "application/pdf", "data": b64(pdf_bytes(["one"]))}}
    parts: dict[str, list[dict[str, Any]]] = {
        "empty_text": [{"text": ""}],
        "no_parts": [],
        "too_many_tokens": [{"text": "word " * 7000}],
        "corrupt_png": [
            {"inline_data": {"mime_type": "image/png", "data": b64(png_bytes("x")[:60])}}
        ],
        "gif": [{"inline_data": {"mime_type": "image/gif", "data": b64(b"GIF89a....")}}],
        "two_pdfs": [pdf, pdf],
        "seven_pages": [
            {
                "inline_data": {
                    "mime_type": "application/pdf",
                    "data": b64(pdf_bytes([f"page {i}" for i in range(7)])),
                }
            }
        ],
        "long_audio": [{"inline_data": {"mime_type": "audio/wav", "data": b64(wav_bytes(81))}}],
        "long_video": [{"inline_data": {"mime_type": "video/mp4", "data": b64(mp4_bytes(125))}}],
        "bad_dimension": [{"text": "fine"}],
        "bad_task": [{"text": "fine"}],
        "media_to_001": [pdf],
        "bad_base64": [{"inline_data": {"mime_type": "image/png", "data": "***"}}],
    }
    model = "gemini-embedding-001" if case == "media_to_001" else MODEL
    bad: dict[str, Any] = {"model": f"models/{model}", "content": {"parts": parts[case]}}
    if case == "bad_dimension":
        bad["outputDimensionality"] = 64
    if case == "bad_task":
        bad["taskType"] = "MAKE_IT_GOOD"
    good = {"model": f"models/{model}", "content": {"parts": [{"text": "fine"}]}}
    resp = raw_post(
        emulator, f"/v1beta/models/{model}:batchEmbedContents", {"requests": [good, bad]}
    )
    assert resp.status_code == 400, resp.text
    error = resp.json()["error"]
    assert error["status"] == "INVALID_ARGUMENT"
    assert error["message"].startswith("request 1: "), error["message"]
    assert reason in error["message"], error["message"]
    assert emulator.stats.items == 0


def test_rate_limit_answers_429_with_retry_delay(emulator: Emulator, client: genai.Client) -> None:
    emulator.configure(rate_limit_rpm=2)
    embed(client, [text_content("one")])
    embed(client, [text_content("two")])
    err = _client_error(embed, client, [text_content("three")])
    assert (err.code, err.status) == (429, "RESOURCE_EXHAUSTED")
    details = err.details["error"]["details"]
    assert details[0]["@type"] == "type.googleapis.com/google.rpc.RetryInfo"
    delay = float(details[0]["retryDelay"].removesuffix("s"))
    assert 55 <= delay <= 60
    assert f"Please retry in {details[0]['retryDelay']}." in (err.message or "")
    assert emulator.stats.faults == {"rate_limit": 1}
    assert (emulator.stats.requests, emulator.stats.items) == (3, 2)


@pytest.mark.parametrize(
    ("kind", "code", "status", "error_type"),
    [
        ("500", 500, "INTERNAL", genai_errors.ServerError),
        ("503", 503, "UNAVAILABLE", genai_errors.ServerError),
        ("429", 429, "RESOURCE_EXHAUSTED", genai_errors.ClientError),
    ],
)
def test_injected_http_faults(
    emulator: Emulator, client: genai.Client, kind: str, code: int, status: str, error_type: type
) -> None:
    emulator.configure(fault_rate=1.0, faults=(kind,), retry_delay=2)
    err = _client_error(embed, client, [text_content("x")])
    assert isinstance(err, error_type)
    assert (err.code, err.status) == (code, status)
    if kind == "429":
        assert err.details["error"]["details"][0]["retryDelay"] == "2s"
        assert "Please retry in 2s." in (err.message or "")
    assert emulator.stats.faults == {kind: 1}
    assert (emulator.stats.requests, emulator.stats.items) == (1, 0)
    emulator.configure(fault_rate=0.0)
    assert len(embed(client, [text_content("x")])) == 1


def test_dropped_connection_raises_in_the_sdk(emulator: Emulator, client: genai.Client) -> None:
    emulator.configure(fault_rate=1.0, faults=("drop",))
    # the SDK sends through httpx2 (a fork of httpx) when it is installed, else httpx
    with pytest.raises(Exception) as info:
        embed(client, [text_content("x")])
    assert not isinstance(info.value, genai_errors.APIError)
    assert type(info.value).__name__ == "RemoteProtocolError"
    assert "without sending a response" in str(info.value)
    assert emulator.stats.faults == {"drop": 1}
    emulator.configure(fault_rate=0.0)
    assert len(embed(client, [text_content("x")])) == 1


def test_slow_fault_and_latency_delay_but_answer(emulator: Emulator, client: genai.Client) -> None:
    emulator.configure(fault_rate=1.0, faults=("slow",), slow_seconds=0.3)
    start = time.monotonic()
    assert len(embed(client, [text_content("x")])) == 1
    assert time.monotonic() - start >= 0.3
    emulator.configure(fault_rate=0.0, latency_per_request=0.1, latency_per_item=0.05)
    start = time.monotonic()
    embed(client, [text_content("a"), text_content("b")])
    assert time.monotonic() - start >= 0.2
    assert emulator.stats.faults == {"slow": 1}


def test_fail_first_faults_only_the_first_requests(
    emulator: Emulator, client: genai.Client
) -> None:
    emulator.configure(fault_rate=1.0, faults=("503",), fail_first=2)
    codes = []
    for _ in range(4):
        try:
            embed(client, [text_content("x")])
            codes.append(200)
        except genai_errors.APIError as exc:
            codes.append(exc.code)
    assert codes == [503, 503, 200, 200]
    emulator.configure(fail_first=1)  # configure starts the count again
    assert _client_error(embed, client, [text_content("x")]).code == 503
    assert len(embed(client, [text_content("x")])) == 1
    assert emulator.stats.faults == {"503": 3}


def test_fault_draws_are_deterministic_for_a_seed(emulator: Emulator, client: genai.Client) -> None:
    def outcomes() -> list[int]:
        emulator.configure(fault_rate=0.5, faults=("500", "503"), seed=7)
        out = []
        for _ in range(16):
            try:
                embed(client, [text_content("x")])
                out.append(200)
            except genai_errors.APIError as exc:
                out.append(exc.code)
        return out

    first, second = outcomes(), outcomes()
    assert first == second
    assert {200, 500, 503} <= set(first)
    assert emulator.stats.requests == 32
    assert emulator.stats.items == 2 * first.count(200)
    assert sum(emulator.stats.faults.values()) == 2 * (16 - first.count(200))


def test_reset_stats_and_last_bodies_cap(emulator: Emulator) -> None:
    with httpx.Client(base_url=emulator.base_url) as http:
        start = time.monotonic()
        for i in range(55):
            http.post(
                f"/v1beta/models/{MODEL}:batchEmbedContents",
                json={"requests": [{"content": {"parts": [{"text": f"n{i}"}]}}]},
            )
        # keep-alive without Nagle stalls: well under the ~40 ms a delayed ACK costs
        assert (time.monotonic() - start) / 55 < 0.03
    assert emulator.stats.requests == 55
    assert len(emulator.stats.last_bodies) == 50
    assert emulator.stats.last_bodies[-1]["requests"][0]["content"]["parts"][0]["text"] == "n54"
    emulator.reset_stats()
    assert (emulator.stats.requests, emulator.stats.items, emulator.stats.faults) == (0, 0, {})
    assert emulator.stats.last_bodies == []


def test_api_key_never_reaches_logs_or_bodies(
    emulator: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="gemb2.testing.emulator")
    with httpx.Client(base_url=emulator.base_url) as http:
        resp = http.post(
            f"/v1beta/models/nope:batchEmbedContents?key={SECRET}",
            json={"requests": []},
            headers={"x-goog-api-key": SECRET},
        )
    assert resp.status_code == 404
    assert SECRET not in resp.text
    assert "batchEmbedContents" in caplog.text
    assert SECRET not in caplog.text


# --- other clients -----------------------------------------------------------------------------


async def test_async_client(emulator: Emulator, client: genai.Client) -> None:
    resp = await client.aio.models.embed_content(
        model=MODEL,
        contents=[text_content("alpha"), text_content("beta")],
        config=types.EmbedContentConfig(output_dimensionality=256),
    )
    assert resp.embeddings is not None
    assert [len(e.values or []) for e in resp.embeddings] == [256, 256]
    sync = embed(client, [text_content("alpha")], dims=256)[0]
    np.testing.assert_allclose(resp.embeddings[0].values, sync, atol=1e-7)  # type: ignore[arg-type]
    assert emulator.stats.items == 3


def test_vertex_embed_content_and_batch(
    emulator: Emulator, vertex: genai.Client, client: genai.Client
) -> None:
    one = vertex.models.embed_content(
        model=MODEL,
        contents=[text_content("hello vertex")],
        config=types.EmbedContentConfig(output_dimensionality=768, task_type="RETRIEVAL_QUERY"),
    )
    assert one.embeddings is not None and len(one.embeddings[0].values or []) == 768
    if SDK_VERSION >= (3, 1):  # older SDKs do not parse Vertex's usageMetadata
        assert one.usage_metadata is not None and one.usage_metadata.prompt_token_count == 3
    single_body = emulator.stats.last_bodies[-1]
    assert single_body["embedContentConfig"] == {
        "taskType": "RETRIEVAL_QUERY",
        "outputDimensionality": 768,
    }
    # the same model answers with the same space on either API
    dev = embed(client, [text_content("hello vertex")], dims=768)[0]
    np.testing.assert_allclose(one.embeddings[0].values, dev, atol=1e-7)  # type: ignore[arg-type]


@pytest.mark.skipif(
    SDK_VERSION < VERTEX_BATCH_SDK,
    reason="google-genai < 3.4 sends one content per Vertex call "
    "(the batch route is checked on the wire in test_vertex_paths_on_the_wire)",
)
def test_vertex_batch_through_the_sdk(
    emulator: Emulator, vertex: genai.Client, client: genai.Client
) -> None:
    many = vertex.models.embed_content(
        model=MODEL,
        contents=[text_content("hello vertex"), text_content("second")],
        config=types.EmbedContentConfig(output_dimensionality=768),
    )
    assert many.embeddings is not None and len(many.embeddings) == 2
    assert emulator.stats.last_bodies[-1]["requests"][1]["embedContentConfig"] == {
        "outputDimensionality": 768
    }
    dev = embed(client, [text_content("hello vertex")], dims=768)[0]
    np.testing.assert_allclose(many.embeddings[0].values, dev, atol=1e-7)  # type: ignore[arg-type]


def test_vertex_paths_on_the_wire(emulator: Emulator) -> None:
    base = "/v1beta1/projects/p/locations/us-central1/publishers/google/models"
    one = raw_post(
        emulator, f"{base}/{MODEL}:embedContent", {"content": {"parts": [{"text": "hi"}]}}
    )
    assert one.status_code == 200
    assert set(one.json()) == {"embedding", "usageMetadata", "truncated"}
    dev = raw_post(
        emulator, f"/v1beta/models/{MODEL}:embedContent", {"content": {"parts": [{"text": "hi"}]}}
    )
    assert set(dev.json()) == {"embedding"}
    assert dev.json()["embedding"]["values"] == one.json()["embedding"]["values"]
    batch = raw_post(
        emulator,
        f"{base}/{MODEL}:batchEmbedContents",
        {
            "requests": [
                {"content": {"parts": [{"text": "hi"}]}},
                {
                    "content": {"parts": [{"text": "there"}]},
                    "embedContentConfig": {"outputDimensionality": 128},
                },
            ]
        },
    )
    assert batch.status_code == 200
    got = batch.json()["embeddings"]
    assert [len(e["values"]) for e in got] == [3072, 128]
    assert got[0]["values"] == one.json()["embedding"]["values"]
    truncated = raw_post(
        emulator,
        f"{base}/{MODEL}:embedContent",
        {
            "content": {"parts": [{"text": "word " * 7000}]},
            "embedContentConfig": {"autoTruncate": True},
        },
    )
    assert truncated.status_code == 200 and truncated.json()["truncated"] is True
    missing = raw_post(emulator, f"{base}/text-embedding-005:predict", {"instances": []})
    assert missing.status_code == 404


# --- command line ------------------------------------------------------------------------------


def test_cli_serves_until_sigterm() -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gemb2.testing.emulator",
            "--port",
            "0",
            "--seed",
            "3",
            "--faults",
            "500",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "deterministic stand-ins" in line and "not Gemini" in line, line
        match = re.search(r"http://127\.0\.0\.1:\d+", line)
        assert match, line
        resp = httpx.post(
            f"{match.group(0)}/v1beta/models/{MODEL}:batchEmbedContents",
            json={"requests": [{"content": {"parts": [{"text": "hi"}]}}]},
            timeout=10,
        )
        assert resp.status_code == 200
        assert len(resp.json()["embeddings"][0]["values"]) == 3072
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_emulator_without_with_and_stop_closes() -> None:
    emu = Emulator(port=0, config=EmulatorConfig(latency_per_request=0.0))
    emu.start()
    url = emu.base_url
    with httpx.Client(base_url=url) as http:
        body = {"requests": [{"content": {"parts": [{"text": "hi"}]}}]}
        assert http.post(f"/v1beta/models/{MODEL}:batchEmbedContents", json=body).status_code == 200
        emu.stop()
        with pytest.raises(httpx.TransportError):
            http.post(f"/v1beta/models/{MODEL}:batchEmbedContents", json=body)
    assert json.dumps(emu.config.model_dump())  # config survives a stop

"""Bad answers from the service: an HTTP 200 whose body is cut short, holds a bare NaN, has
one vector too few or a vector of the wrong dimension. Each is a fault on the wire: retried
within the budget (and counted), and when retries run out the package's typed error names
the batch. Nothing of a bad answer is returned, cached or handed to ``on_batch``.

The emulator injects these answers over real HTTP; the real google-genai SDK reads them."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import httpx
import pytest
from rel_helpers import DIMS, run_cli

from gemb2 import (
    APIError,
    Embedder,
    ResponseMismatchError,
    RetryExhaustedError,
    VectorCache,
)
from gemb2.testing.emulator import Emulator
from gemb2.transport.genai import SDK_VERSION, VERTEX_BATCH_SDK

BAD_ANSWERS = ("truncated", "nan", "wrong_count", "wrong_dim")
# what each bad answer's error says, after "bad answer for items 0..2: "
REASONS = {
    "truncated": "the answer is not valid JSON",
    "nan": "the answer is not valid JSON",
    "wrong_count": "sent 3 items but the service returned 2 vectors",
    "wrong_dim": f"item 0: got a {DIMS - 1}-d vector, asked for {DIMS}",
}
TEXTS = ["a red circle", "a blue square", "a yellow star"]
FAST: dict[str, Any] = {"backoff_initial": 0.0, "backoff_max": 0.0}


def _embedder(emu: Emulator, **kw: Any) -> Embedder:
    return Embedder(base_url=emu.base_url, dimensions=DIMS, **{**FAST, **kw})


def _post(emu: Emulator, n: int) -> httpx.Response:
    body = {
        "requests": [
            {
                "model": "models/gemini-embedding-2",
                "content": {"parts": [{"text": f"text {i}"}]},
                "outputDimensionality": DIMS,
            }
            for i in range(n)
        ]
    }
    return httpx.post(
        f"{emu.base_url}/v1beta/models/gemini-embedding-2:batchEmbedContents",
        json=body,
        headers={"x-goog-api-key": "emulator"},
        timeout=30,
    )


def test_the_emulator_answers_200_with_each_bad_body(emulator: Emulator) -> None:
    """The knobs themselves, read with plain HTTP: a 200 whose full body (Content-Length
    agrees) is each kind of bad answer."""
    good = _post(emulator, 3)
    assert good.status_code == 200 and len(good.json()["embeddings"]) == 3
    for kind in BAD_ANSWERS:
        emulator.configure(fault_rate=1.0, faults=(kind,))
        answer = _post(emulator, 3)
        assert answer.status_code == 200, kind
        assert int(answer.headers["content-length"]) == len(answer.content)
        if kind == "truncated":
            assert answer.content == good.content[: len(good.content) // 2]
            with pytest.raises(json.JSONDecodeError):
                json.loads(answer.content)
        elif kind == "nan":
            assert answer.content.startswith(b'{"embeddings":[{"values":[NaN,')
            assert math.isnan(json.loads(answer.content)["embeddings"][0]["values"][0])
        elif kind == "wrong_count":
            assert answer.json()["embeddings"] == good.json()["embeddings"][:2]
        else:
            got = [e["values"] for e in answer.json()["embeddings"]]
            want = [e["values"] for e in good.json()["embeddings"]]
            assert [len(v) for v in got] == [DIMS - 1, DIMS, DIMS]
            assert got[0] == want[0][:-1] and got[1:] == want[1:]
        assert emulator.stats.faults == {kind: 1}
        emulator.reset_stats()


@pytest.mark.parametrize("kind", BAD_ANSWERS)
def test_a_bad_answer_is_retried_and_only_the_good_one_lands(
    emulator: Emulator, tmp_path: Path, kind: str
) -> None:
    want = _embedder(emulator).embed(TEXTS)
    emulator.configure(fault_rate=1.0, faults=(kind,), fail_first=2)  # two bad, then good
    emulator.reset_stats()
    landed: list[tuple[list[int], list[list[float]]]] = []
    cache = VectorCache(tmp_path / "cache.sqlite")
    emb = _embedder(emulator, max_retries=3, cache=cache)
    got = emb.embed(TEXTS, on_batch=lambda i, v: landed.append((i, v)))
    assert got == want
    assert landed == [([0, 1, 2], want)]  # once, and only the good answer
    assert emulator.stats.faults == {kind: 2}
    assert (emb.usage.requests, emb.usage.retries, emb.usage.items) == (3, 2, 3)
    assert emulator.stats.requests == 3
    assert all(all(math.isfinite(x) for x in v) and len(v) == DIMS for v in got)


@pytest.mark.parametrize("kind", BAD_ANSWERS)
def test_bad_answers_past_the_retry_budget_raise_a_typed_error_naming_the_batch(
    emulator: Emulator, tmp_path: Path, kind: str
) -> None:
    emulator.configure(fault_rate=1.0, faults=(kind,))
    landed: list[list[int]] = []
    cache = VectorCache(tmp_path / "cache.sqlite")
    emb = _embedder(emulator, max_retries=2, cache=cache)
    with pytest.raises(RetryExhaustedError) as info:
        emb.embed(TEXTS, on_batch=lambda i, v: landed.append(i))
    err = info.value
    assert isinstance(err, APIError) and err.attempts == 3
    assert isinstance(err.last, ResponseMismatchError)
    assert err.last.items == (0, 1, 2)
    assert str(err.last).startswith(f"bad answer for items 0..2: {REASONS[kind]}")
    assert str(err).startswith("gave up after 3 attempts: bad answer for items 0..2: ")
    assert landed == []  # nothing of a bad answer is handed on ...
    assert cache.get_many(p.key for p in emb.prepare(TEXTS)) == {}  # ... or cached
    # every attempt counted, the last failed one too
    assert (emb.usage.requests, emb.usage.retries, emb.usage.items) == (3, 2, 0)
    assert emulator.stats.requests == 3


# the structured fields of each bad answer's error: the item at fault (None: the whole
# answer) and what is wrong, without its position
FIELDS = {
    "truncated": (None, "the answer is not valid JSON"),
    "nan": (None, "the answer is not valid JSON"),
    "wrong_count": (None, "sent 3 items but the service returned 2 vectors"),
    "wrong_dim": (0, f"got a {DIMS - 1}-d vector, asked for {DIMS}"),
}


@pytest.mark.parametrize("kind", BAD_ANSWERS)
def test_the_error_of_a_bad_answer_carries_the_item_and_the_reason(
    emulator: Emulator, kind: str
) -> None:
    """Which item was at fault, and why, are fields of the error: a caller (the CLI, an
    indexer skipping one item) reads them instead of parsing the message."""
    emulator.configure(fault_rate=1.0, faults=(kind,))
    emb = _embedder(emulator, max_retries=0)
    with pytest.raises(RetryExhaustedError) as info:
        emb.embed(TEXTS)
    last = info.value.last
    assert isinstance(last, ResponseMismatchError)
    item, reason = FIELDS[kind]
    assert last.item == item and last.items == (0, 1, 2)
    assert last.reason.startswith(reason)
    where = f"item {item}: " if item is not None else ""
    assert str(last) == f"bad answer for items 0..2: {where}{last.reason}"


def test_a_zero_vector_names_its_item_in_a_field() -> None:
    from gemb2.engine.vectors import BadVectorError, checked_rows
    from gemb2.transport.base import CallResult

    emb = Embedder(base_url="http://127.0.0.1:1", dimensions=DIMS)
    batch = emb.prepare(TEXTS)
    good = [1.0] * DIMS
    with pytest.raises(ResponseMismatchError) as info:
        emb._validate(batch, CallResult([good, good, [0.0] * DIMS], None))
    assert (info.value.item, info.value.reason) == (2, "vector is zero or holds NaN or infinity")
    # rows that are not one matrix of numbers: a typed error too, with no row to name
    with pytest.raises(BadVectorError) as rows:
        checked_rows([[1.0, 2.0], ["x", 1.0]], normalize=True)
    assert rows.value.row is None and isinstance(rows.value, ValueError)
    assert rows.value.reason == "vectors of different lengths, or values that are not numbers"
    with pytest.raises(ResponseMismatchError) as whole:
        emb._validate(batch, CallResult([good, good, ["x"] * DIMS], None))  # type: ignore[list-item]
    assert whole.value.item is None and whole.value.reason == rows.value.reason


async def test_the_async_path_retries_bad_answers_and_gives_up_the_same_way(
    emulator: Emulator,
) -> None:
    want = _embedder(emulator).embed(TEXTS)
    emulator.configure(fault_rate=1.0, faults=("truncated", "nan"), fail_first=2, seed=3)
    emulator.reset_stats()
    emb = _embedder(emulator, max_retries=3)
    assert await emb.aembed(TEXTS) == want
    assert (emb.usage.requests, emb.usage.retries) == (3, 2) == (emulator.stats.requests, 2)

    emulator.configure(fault_rate=1.0, faults=("wrong_count",))
    emulator.reset_stats()
    emb = _embedder(emulator, max_retries=1)
    with pytest.raises(RetryExhaustedError) as info:
        await emb.aembed(TEXTS)
    await emb.aclose()
    assert isinstance(info.value.last, ResponseMismatchError)
    assert "sent 3 items but the service returned 2 vectors" in str(info.value)
    assert emb.usage.requests == 2 == emulator.stats.requests


def test_the_failing_batch_is_named_and_the_answered_ones_kept(emulator: Emulator) -> None:
    """Batches of 5 sent one after another; the first is answered well, the second
    short: the error names the second batch's items, and the first batch has landed."""
    from gemb2.testing.emulator.faults import FaultDrawer

    def pattern(seed: int) -> list[bool]:
        drawer = FaultDrawer(seed)
        return [drawer.draw(0.5, ("wrong_count",), 0.0) is not None for _ in range(2)]

    seed = next(s for s in range(1000) if pattern(s) == [False, True])
    emulator.configure(fault_rate=0.5, faults=("wrong_count",), seed=seed)
    texts = [f"text {i}" for i in range(20)]
    landed: list[list[int]] = []
    emb = _embedder(emulator, batch_size=5, max_concurrency=1, max_retries=0)
    with pytest.raises(RetryExhaustedError) as info:
        emb.embed(texts, on_batch=lambda i, v: landed.append(i))
    assert isinstance(info.value.last, ResponseMismatchError)
    assert info.value.last.items == (5, 6, 7, 8, 9)
    assert str(info.value) == (
        "gave up after 1 attempts: bad answer for items 5..9: sent 5 items but the "
        "service returned 4 vectors; refusing to guess which vector belongs to which item"
    )
    assert landed == [[0, 1, 2, 3, 4]]  # answered before the failure: kept, never a bad one
    assert emulator.stats.requests == 2 and emb.usage.requests == 2 and emb.usage.items == 5


@pytest.mark.parametrize("kind", ["truncated", "nan", "wrong_count"])
def test_vertex_ai_answers_that_cannot_be_used_are_retried_too(
    emulator: Emulator, kind: str
) -> None:
    """Vertex AI goes through the SDK's public embed_content, which parses the body itself
    (json.loads: a truncated body raises there, a bare NaN is read as a float)."""
    from google.oauth2.credentials import Credentials

    settings: dict[str, Any] = {
        "vertexai": True,
        "project": "proj",
        "location": "us-central1",
        "credentials": Credentials(token="t"),
    }
    want = _embedder(emulator, **settings).embed(TEXTS)
    emulator.configure(fault_rate=1.0, faults=(kind,), fail_first=1)
    emulator.reset_stats()
    emb = _embedder(emulator, max_retries=2, **settings)
    assert emb.embed(TEXTS) == want
    # google-genai 3.4+ sends the three in one Vertex call; older SDKs one call each
    calls = 1 if SDK_VERSION >= VERTEX_BATCH_SDK else len(TEXTS)
    assert emb.usage.retries == 1 and emulator.stats.requests == calls + 1

    emulator.configure(fault_rate=1.0, faults=(kind,), fail_first=None)
    with pytest.raises(RetryExhaustedError) as info:
        emb.embed(TEXTS)
    assert isinstance(info.value.last, ResponseMismatchError)
    assert info.value.last.items in ((0, 1, 2), (0,), (1,), (2,))


def test_the_cli_prints_one_line_naming_the_batch(
    emulator: Emulator, capsys: pytest.CaptureFixture[str]
) -> None:
    emulator.configure(fault_rate=1.0, faults=("truncated",))
    code, out, err = run_cli(
        capsys,
        "embed",
        "some text",
        "--base-url",
        emulator.base_url,
        "--dimensions",
        str(DIMS),
        "--max-retries",
        "1",
    )
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(
        "gemb2 embed: error: gave up after 2 attempts: bad answer for item 0: "
        "the answer is not valid JSON"
    )
    assert emulator.stats.requests == 2

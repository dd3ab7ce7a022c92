"""``usage.requests`` counts every attempt sent, whatever came of it: answered, retried,
given up, or refused for good on the first try; the emulator's own count agrees."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from gemb2 import APIError, ConfigError, Embedder, RetryExhaustedError
from gemb2.testing import FakeTransport
from gemb2.testing.emulator import Emulator
from gemb2.testing.samples import make_png

FAST: dict[str, Any] = {"dimensions": 128, "backoff_initial": 0.0, "backoff_max": 0.0}


def make(emulator: Emulator, **kw: Any) -> Embedder:
    return Embedder(base_url=emulator.base_url, **{**FAST, **kw})


def test_a_call_refused_for_good_counts_as_a_request(emulator: Emulator) -> None:
    emulator.configure(max_batch=1)  # 400 INVALID_ARGUMENT for a batch of 2: not retried
    emb = make(emulator, max_retries=3)
    with pytest.raises(APIError) as info:
        emb.embed(["one", "two"])
    assert info.value.code == 400 and not isinstance(info.value, RetryExhaustedError)
    assert (emb.usage.requests, emb.usage.retries, emb.usage.items) == (1, 0, 0)
    assert emulator.stats.requests == 1

    emulator.configure(max_batch=100, reject_api_key=True)  # 403 PERMISSION_DENIED
    with pytest.raises(APIError, match="403 PERMISSION_DENIED"):
        emb.embed(["one"])
    assert (emb.usage.requests, emb.usage.retries) == (2, 0) == (emulator.stats.requests, 0)


@pytest.mark.parametrize("kind", ["503", "429", "drop"])
def test_retries_that_run_out_count_every_attempt(emulator: Emulator, kind: str) -> None:
    emulator.configure(fault_rate=1.0, faults=(kind,), retry_delay=0.0)
    emb = make(emulator, max_retries=2)
    with pytest.raises(RetryExhaustedError) as info:
        emb.embed(["x"])
    assert info.value.attempts == 3
    assert (emb.usage.requests, emb.usage.retries, emb.usage.items) == (3, 2, 0)
    assert emulator.stats.requests == 3
    assert "3 requests, 2 retries" in emb.usage.summary()


async def test_the_async_path_counts_failed_attempts(emulator: Emulator) -> None:
    emulator.configure(fault_rate=1.0, faults=("500",))
    emb = make(emulator, max_retries=1)
    with pytest.raises(RetryExhaustedError):
        await emb.aembed(["x"])
    emulator.configure(fault_rate=0.0, max_batch=1)
    with pytest.raises(APIError, match="400"):
        await emb.aembed(["one", "two"])
    await emb.aclose()
    assert (emb.usage.requests, emb.usage.retries) == (3, 1)
    assert emulator.stats.requests == 3


def test_concurrent_batches_failing_for_good_are_all_counted(emulator: Emulator) -> None:
    emulator.configure(fault_rate=1.0, faults=("503",), latency_per_request=0.05)
    emb = make(emulator, max_retries=2, batch_size=5, max_concurrency=3)
    with pytest.raises(RetryExhaustedError):
        emb.embed([f"text {i}" for i in range(30)])
    assert emb.usage.requests == emulator.stats.requests >= 3
    assert emb.usage.items == 0


def test_a_failure_before_anything_is_sent_is_no_request() -> None:
    """No key for a remote base URL: a setting's error, not a request."""
    emb = Embedder(base_url="http://192.0.2.1:9", **FAST)
    with pytest.raises(ConfigError, match="no API key"):
        emb.embed(["x"])
    assert emb.usage.requests == 0


def test_usage_sums_each_items_estimated_tokens_by_modality(tmp_path: Path) -> None:
    """Tokens are summed per modality over every item of every call (interleaved items
    count toward each of their modalities), and items are counted by modality."""
    png = make_png(tmp_path / "cat.png", "a cat")
    inputs: list[Any] = [f"text number {i} " * (i + 1) for i in range(150)]
    inputs += [png, ["a caption", png]]
    emb = Embedder(dimensions=128, transport=FakeTransport(), batch_size=40)
    prepared = emb.prepare(inputs)
    expected: Counter[str] = Counter()
    for p in prepared:
        expected.update(p.tokens)
    assert set(expected) == {"text", "image"} and expected["text"] > 150

    emb.embed(inputs)
    assert emb.usage.requests == 4  # three calls of 40 texts, one of 30 texts and the images
    assert dict(emb.usage.tokens) == dict(expected)
    assert dict(emb.usage.modalities) == {"text": 150, "image": 1, "interleaved": 1}

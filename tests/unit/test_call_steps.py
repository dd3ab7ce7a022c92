"""The one step logic of a batch call (``gemb2.engine.calls.attempts``), driven by hand as
both drivers drive it: what it asks for, what it counts, when it retries or gives up."""

from __future__ import annotations

import json

import pytest

from gemb2 import Embedder, RetryExhaustedError, ServerError
from gemb2.engine import calls
from gemb2.engine.planning import Answered
from gemb2.engine.ratelimit import RateLimiter
from gemb2.engine.usage import Usage
from gemb2.transport.base import Answer

DIMS = 128


def _steps(usage: Usage, stopped: list[bool], **settings: object) -> calls.Steps:
    emb = Embedder(
        base_url="http://127.0.0.1:1",
        dimensions=DIMS,
        backoff_initial=0.0,
        backoff_max=0.0,
        **settings,  # type: ignore[arg-type]
    )
    return calls.attempts(
        emb.prepare(["a", "b"]),
        settings=emb.settings,
        dimensions=DIMS,
        limiter=RateLimiter(None, None),
        usage=usage,
        stopped=lambda: stopped[0],
    )


def _answer(n: int) -> Answer:
    return Answer(body=json.dumps({"embeddings": [{"values": [1.0] * DIMS}] * n}))


def test_a_failure_then_an_answer() -> None:
    usage, stopped = Usage(), [False]
    steps = _steps(usage, stopped, max_retries=2)
    send = steps.send(None)
    assert isinstance(send, calls.Send) and send.nbytes == 0
    call = send.call()
    assert (call.model, call.dimensions, len(call.items)) == ("gemini-embedding-2", DIMS, 2)
    pause = steps.throw(ServerError("overloaded", code=503, status="UNAVAILABLE"))
    assert isinstance(pause, calls.Pause) and pause.seconds >= 0
    assert isinstance(steps.send(None), calls.Send)
    malformed = steps.send(_answer(1))  # one vector for two items: retried like a 503
    assert isinstance(malformed, calls.Pause)
    assert isinstance(steps.send(None), calls.Send)
    with pytest.raises(StopIteration) as done:
        steps.send(_answer(2))
    answered = done.value.value
    assert isinstance(answered, Answered) and answered.attempts == 3
    assert [len(v) for v in answered.vectors] == [DIMS, DIMS]
    assert (usage.requests, usage.retries) == (3, 2)


def test_giving_up_and_not_sending() -> None:
    usage, stopped = Usage(), [False]
    steps = _steps(usage, stopped, max_retries=0)
    steps.send(None)
    with pytest.raises(RetryExhaustedError) as info:
        steps.throw(ServerError("overloaded", code=503))
    assert info.value.attempts == 1 and (usage.requests, usage.retries) == (1, 0)

    # a call dropped before it was sent (its task cancelled while waiting) is no request
    steps = _steps(usage, stopped)
    steps.send(None)
    steps.close()
    assert usage.requests == 1

    # once the run has failed, the call is not built: Stopped, and not counted either
    steps = _steps(usage, stopped)
    send = steps.send(None)
    stopped[0] = True
    with pytest.raises(calls.Stopped):
        send.call()
    with pytest.raises(calls.Stopped):
        steps.throw(calls.Stopped())
    assert usage.requests == 1

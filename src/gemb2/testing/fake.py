"""The in-process transport: the emulator's request handling without HTTP."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import orjson
from google.genai import errors as genai_errors

from gemb2.model.profile import Profile, load_profile
from gemb2.testing.emulator.api_errors import ApiError, Drop
from gemb2.testing.emulator.config import EmulatorConfig
from gemb2.testing.emulator.server import EmulatorApp
from gemb2.testing.emulator.stats import EmulatorStats
from gemb2.transport.base import Answer, EmbedCall


class FakeTransport:
    """Answers every call as the emulator would over HTTP, in this process.

    ``calls`` holds each request body as it would go on the wire; ``stats`` and
    ``configure(**knobs)`` are the emulator's own (``EmulatorConfig``: faults, latency,
    rate limit); ``profile`` the service facts it serves (as ``Emulator(profile=...)``).
    Service errors are raised as the SDK's ``ClientError``/``ServerError``
    and a dropped connection as ``ConnectionResetError``, as the real transport sees them.
    """

    max_batch = 100

    def __init__(
        self,
        config: EmulatorConfig | None = None,
        *,
        profile: Profile | str | Path | None = None,
        **knobs: Any,
    ) -> None:
        self._app = EmulatorApp(config or EmulatorConfig(**knobs), load_profile(profile))
        self._lock = threading.Lock()
        self.calls: list[dict[str, Any]] = []

    @property
    def stats(self) -> EmulatorStats:
        return self._app.stats

    @property
    def config(self) -> EmulatorConfig:
        return self._app.config

    def configure(self, **changes: Any) -> EmulatorConfig:
        """Change the emulator's knobs, e.g. ``configure(fault_rate=1.0, faults=["503"])``."""
        return self._app.configure(**changes)

    def post(self, call: EmbedCall) -> Answer:
        path, body = call.batch_body()
        with self._lock:
            self.calls.append(body)
        try:
            _, answer = self._app.handle_post(f"/v1beta/{path}", orjson.dumps(body))
        except ApiError as exc:
            kind = genai_errors.ClientError if exc.code < 500 else genai_errors.ServerError
            raise kind(exc.code, exc.body()) from None
        except Drop:
            raise ConnectionResetError(
                "the fake service closed the connection without an answer"
            ) from None
        data = answer if isinstance(answer, bytes) else orjson.dumps(answer)
        return Answer(body=data.decode())

    async def apost(self, call: EmbedCall) -> Answer:
        # the emulator may sleep (latency, slow faults): not on the event loop
        return await asyncio.to_thread(self.post, call)

    def close(self) -> None:
        """Nothing to release: no socket, no client."""

    async def aclose(self) -> None:
        """Nothing to release."""

    def __repr__(self) -> str:
        return f"FakeTransport(calls={len(self.calls)})"

"""Transports: what sends one batch call and hands back its answer.

``Transport`` is the protocol the Embedder calls; ``GenAITransport`` is the one place that
talks to google-genai (client construction, the Developer API's fast path, Vertex AI's
public call). ``gemb2.testing.FakeTransport`` answers in process. A transport knows
nothing of limits or retries.
"""

from __future__ import annotations

import json
import logging
import threading
from typing import Any
from urllib.parse import urlparse

from google import genai
from google.genai import types

from gemb2 import redaction
from gemb2.engine.settings import API_KEY_ENV_VARS, VERTEX_ONLY, EmbedSettings
from gemb2.errors import ConfigError
from gemb2.transport.base import Answer, EmbedCall, Transport

log = logging.getLogger("gemb2")

# google-genai sends several contents in one Vertex AI call (:batchEmbedContents) from 3.4
# on; before, it sends one per :embedContent call and raises ValueError for more.
SDK_VERSION = tuple(int(p) for p in genai.__version__.split(".")[:2])
VERTEX_BATCH_SDK = (3, 4)
_LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}


def is_loopback(url: str | None) -> bool:
    return bool(url) and urlparse(url).hostname in _LOOPBACK


class GenAITransport:
    """Builds the google-genai client from settings and sends each call through it."""

    def __init__(self, settings: EmbedSettings) -> None:
        self.settings = settings
        self._client: genai.Client | None = None
        self._lock = threading.Lock()

    @property
    def max_batch(self) -> int:
        """Vertex AI before google-genai 3.4 takes one content per call for the multimodal
        models."""
        s = self.settings
        if s.vertexai and SDK_VERSION < VERTEX_BATCH_SDK and s.spec.id != "gemini-embedding-001":
            return 1
        return 100

    @property
    def client(self) -> genai.Client:
        # one client per transport: a second one, dropped, would close the shared pool
        with self._lock:
            if self._client is None:
                self._client = self._build()
            return self._client

    def _build(self) -> genai.Client:
        s = self.settings
        # One attempt per call: the core owns retries. Without retry_options the SDK's aiohttp
        # path retries a dropped connection once by itself, after sleeping 1-10 s, unseen by
        # the core's backoff, budget and retry count.
        http = types.HttpOptions(
            timeout=int(s.timeout * 1000), retry_options=types.HttpRetryOptions(attempts=1)
        )
        if s.base_url:
            http.base_url = s.base_url
        if s.api_version:
            http.api_version = s.api_version
        if s.vertexai:
            if not (s.project and s.location):
                raise ConfigError("Vertex AI needs project and location (or GOOGLE_CLOUD_PROJECT)")
            return genai.Client(
                vertexai=True,
                project=s.project,
                location=s.location,
                credentials=s.credentials,
                http_options=http,
            )
        key, _ = s.resolve_api_key()
        redaction.register(key)  # a service or proxy may echo it in an error message
        if key is None and is_loopback(s.base_url):
            key = "emulator"  # a local stand-in needs no real key
        if key is None:
            raise ConfigError(
                f"no API key: set {' or '.join(API_KEY_ENV_VARS)}, pass api_key=..., "
                "or use vertexai=True; to work offline run `gemb2 emulator` and pass its base_url"
            )
        return genai.Client(api_key=key, http_options=http)

    def _public_call(self, call: EmbedCall) -> dict[str, Any]:
        """Arguments of the SDK's public ``embed_content`` (Vertex AI's path, which also
        carries the Vertex-only options that are set)."""
        s = self.settings
        vertex_options = {n: getattr(s, n) for n in VERTEX_ONLY if getattr(s, n) is not None}
        return {
            "model": call.model,
            "contents": [item.to_content(text) for item, text in call.items],
            "config": types.EmbedContentConfig(
                task_type=call.task_type,
                title=call.title,
                output_dimensionality=call.dimensions,
                **vertex_options,
            ),
        }

    def post(self, call: EmbedCall) -> Answer:
        """Send one call; ``Answer.decode`` reads it (and says when it is malformed)."""
        api = self._raw_api()
        if api is not None:
            path, body = call.batch_body()
            return Answer(body=api.request("post", path, body, None).body)
        try:
            response = self.client.models.embed_content(**self._public_call(call))
        except json.JSONDecodeError as exc:  # the SDK parses a 200's body with json.loads
            return Answer(malformed=f"the answer is not valid JSON ({exc})")
        return Answer(response=response)

    async def apost(self, call: EmbedCall) -> Answer:
        api = self._raw_api()
        if api is not None:
            path, body = call.batch_body()
            return Answer(body=(await api.async_request("post", path, body, None)).body)
        try:
            response = await self.client.aio.models.embed_content(**self._public_call(call))
        except json.JSONDecodeError as exc:
            return Answer(malformed=f"the answer is not valid JSON ({exc})")
        return Answer(response=response)

    def _raw_api(self) -> Any | None:
        """The SDK's API client, for the Developer API; None sends through ``embed_content``.

        Vertex AI keeps the public call: it picks among several endpoints by model.
        """
        if self.settings.vertexai:
            return None
        api = getattr(self.client, "_api_client", None)
        if api is None or not hasattr(api, "request") or not hasattr(api, "async_request"):
            return None  # an SDK without it: the public path still works, only slower
        return api

    def close(self) -> None:
        if self._client is not None:
            try:
                self._client.close()
            except Exception:  # pragma: no cover - best effort on shutdown
                log.debug("client close failed", exc_info=True)
            self._client = None

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aio.aclose()
        self.close()

    def __repr__(self) -> str:
        return f"GenAITransport(model={self.settings.model!r}, base_url={self.settings.base_url!r})"


def genai_client(transport: Transport) -> genai.Client:
    """The SDK client behind a transport, for what only google-genai does (Batch Mode, the
    Files API, a credentials check)."""
    if not isinstance(transport, GenAITransport):
        raise ConfigError(
            f"{type(transport).__name__} has no google-genai client: Batch Mode and the "
            "Files API need the default transport"
        )
    return transport.client

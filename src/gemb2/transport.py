"""The one place that talks to google-genai: client construction and raw calls.

It knows nothing of limits or retries; it sends items and hands back the answers.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from google import genai
from google.genai import types

from . import wire
from .errors import ConfigError
from .media import Item
from .settings import API_KEY_ENV_VARS, EmbedSettings

log = logging.getLogger("gemb2")

# google-genai sends several contents in one Vertex AI call (:batchEmbedContents) from 3.4
# on; before, it sends one per :embedContent call and raises ValueError for more.
SDK_VERSION = tuple(int(p) for p in genai.__version__.split(".")[:2])
VERTEX_BATCH_SDK = (3, 4)
_LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}


def is_loopback(url: str | None) -> bool:
    return bool(url) and urlparse(url).hostname in _LOOPBACK


@dataclass(frozen=True)
class CallResult:
    vectors: list[list[float]]
    billed_tokens: int | None


class Transport:
    """Builds the SDK client from settings and performs one embedding call."""

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
        return min(s.batch_size, s.resolved_limits.max_batch)

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
        if key is None and is_loopback(s.base_url):
            key = "emulator"  # a local stand-in needs no real key
        if key is None:
            raise ConfigError(
                f"no API key: set {' or '.join(API_KEY_ENV_VARS)}, pass api_key=..., "
                "or use vertexai=True; to work offline run `gemb2 emulator` and pass its base_url"
            )
        return genai.Client(api_key=key, http_options=http)

    def _public_call(
        self, items: Sequence[tuple[Item, str | None]], task_type: str | None, title: str | None
    ) -> dict[str, Any]:
        """Arguments of the SDK's public ``embed_content`` (Vertex AI's path)."""
        return {
            "model": self.settings.spec.id,
            "contents": [item.to_content(text) for item, text in items],
            "config": types.EmbedContentConfig(
                task_type=task_type,
                title=title,
                output_dimensionality=self.settings.resolved_dimensions,
            ),
        }

    def post(
        self, items: Sequence[tuple[Item, str | None]], task_type: str | None, title: str | None
    ) -> Answer:
        """One call for ``(item, text)`` pairs (``text`` replaces a text-only item's own);
        its answer is decoded later, by whoever lands it."""
        api = self._raw_api()
        if api is not None:
            path, body = self._raw_request(items, task_type, title)
            return Answer(body=api.request("post", path, body, None).body)
        response = self.client.models.embed_content(**self._public_call(items, task_type, title))
        return Answer(response=response)

    async def apost(
        self, items: Sequence[tuple[Item, str | None]], task_type: str | None, title: str | None
    ) -> Answer:
        api = self._raw_api()
        if api is not None:
            path, body = self._raw_request(items, task_type, title)
            return Answer(body=(await api.async_request("post", path, body, None)).body)
        response = await self.client.aio.models.embed_content(
            **self._public_call(items, task_type, title)
        )
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

    def _raw_request(
        self, items: Sequence[tuple[Item, str | None]], task_type: str | None, title: str | None
    ) -> tuple[str, dict[str, Any]]:
        model = self.settings.spec.id
        contents = [wire.item_json(item, text) for item, text in items]
        body = wire.batch_embed_request(
            model, contents, task_type, title, self.settings.resolved_dimensions
        )
        return f"{wire.model_path(model)}:batchEmbedContents", body

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
        return f"Transport(model={self.settings.model!r}, base_url={self.settings.base_url!r})"


@dataclass(frozen=True)
class Answer:
    """A call's answer as it came: the JSON text of a raw request (the Developer API path)
    or the SDK's ``EmbedContentResponse``. Decoding 100 x 768 values costs ~5 ms under the
    GIL, so the thread that made the call leaves it to whoever lands the batch and makes
    its next call first."""

    body: str | None = None
    response: types.EmbedContentResponse | None = None

    def decode(self) -> CallResult:
        if self.response is None:
            vectors, billed = wire.batch_embed_vectors(self.body or "")
            return CallResult(vectors=vectors, billed_tokens=billed)
        vectors = [list(e.values or []) for e in (self.response.embeddings or [])]
        meta = self.response.metadata
        billed = meta.billable_character_count if meta is not None else None
        return CallResult(vectors=vectors, billed_tokens=int(billed) if billed else None)

"""The Transport protocol and the records that cross it: one call out, one answer back.

The Embedder builds an ``EmbedCall``, a ``Transport`` sends it and returns an ``Answer``
as it came; the Embedder decodes it inside its retry loop. Nothing here sends anything.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from google.genai import types

from gemb2.inputs.media import Item
from gemb2.transport import wire


@dataclass(frozen=True)
class CallResult:
    vectors: list[list[float]]
    billed_tokens: int | None


@dataclass(frozen=True)
class EmbedCall:
    """One batch call as the Embedder asks for it: ``(item, text)`` pairs (``text``
    replaces a text-only item's own: its task prefix) with their shared options."""

    model: str
    dimensions: int
    items: Sequence[tuple[Item, str | None]]
    task_type: str | None = None
    title: str | None = None

    def batch_body(self) -> tuple[str, dict[str, Any]]:
        """Path and JSON body of the Developer API's ``batchEmbedContents`` for this call."""
        contents = [wire.item_json(item, text) for item, text in self.items]
        body = wire.batch_embed_request(
            self.model, contents, self.task_type, self.title, self.dimensions
        )
        return f"{wire.model_path(self.model)}:batchEmbedContents", body


@runtime_checkable
class Transport(Protocol):
    """What the Embedder needs of whatever sends its calls (swap it with
    ``Embedder(transport=...)``). Errors are the SDK's (``google.genai.errors.APIError``)
    or gemb2's ``APIError``; connection failures are httpx's or the OS's."""

    @property
    def max_batch(self) -> int:
        """Most items one call may carry (the Embedder also applies the model's limit)."""
        ...

    def post(self, call: EmbedCall) -> Answer: ...

    async def apost(self, call: EmbedCall) -> Answer: ...

    def close(self) -> None: ...

    async def aclose(self) -> None: ...


@dataclass(frozen=True)
class Answer:
    """A call's answer as it came: the JSON text of a raw request (the Developer API path),
    the SDK's ``EmbedContentResponse``, or why the SDK could not read it. The Embedder
    decodes it in its retry loop, so a malformed answer gets another try like a 503."""

    body: str | None = None
    response: types.EmbedContentResponse | None = None
    malformed: str | None = None

    def decode(self) -> CallResult:
        """Raises ``wire.MalformedAnswer`` for a body that is not an answer."""
        if self.malformed is not None:
            raise wire.MalformedAnswer(self.malformed)
        if self.response is None:
            vectors, billed = wire.batch_embed_vectors(self.body or "")
            return CallResult(vectors=vectors, billed_tokens=billed)
        vectors = [list(e.values or []) for e in (self.response.embeddings or [])]
        meta = self.response.metadata
        billed = meta.billable_character_count if meta is not None else None
        return CallResult(vectors=vectors, billed_tokens=int(billed) if billed else None)

"""One item on its way into a batch job and back: its request line, size and answer.

The helpers ``BatchEmbedder`` uses per item: the JSONL line an item becomes and the
bytes it takes, the cost estimate of a group, a job's state, reading one answer in
either spelling the service uses, and how to rebuild a media item for an online retry.
"""

from __future__ import annotations

import base64
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from google.genai import types

from gemb2.batch.records import CostEstimate
from gemb2.engine.embedder import Embedder
from gemb2.engine.planning import PreparedItem
from gemb2.errors import InputError
from gemb2.ingest.loading import file_hash, load_file, source_path
from gemb2.inputs.media import Item, Media
from gemb2.transport.wire import embed_request, item_json

_LINE_OVERHEAD = 160  # JSON around one request: key, field names, options


@dataclass(frozen=True)
class _Entry:
    key: str
    item: Item
    prepared: PreparedItem
    payload: Any


def _state(job: types.BatchJob) -> str:
    state = job.state
    if state is None:
        return "JOB_STATE_UNSPECIFIED"
    return str(getattr(state, "value", state))


def _estimate(entries: list[_Entry]) -> CostEstimate:
    tokens: Counter[str] = Counter()
    for e in entries:
        tokens.update(e.prepared.tokens)
    return CostEstimate(dict(tokens), len(entries))


def _line(e: _Entry, dims: int) -> dict[str, Any]:
    """One JSONL line: the caller's key and the request an online call would send."""
    p = e.prepared
    content = item_json(p.item, p.text)
    return {"key": e.key, "request": embed_request(content, p.task_type, p.title, dims)}


def _line_size(e: _Entry) -> int:
    """Bytes one item takes in a request: base64 grows media by a third."""
    return (e.prepared.size * 4) // 3 + len(e.key) + _LINE_OVERHEAD


def _parse_answer(
    answer: Mapping[str, Any],
) -> tuple[list[float] | None, int | None, str | None, int | None]:
    """(values, error code, error message, token count) from one answer, either spelling."""
    error = answer.get("error") or answer.get("status")
    response = answer.get("response") or {}
    embedding = response.get("embedding") if isinstance(response, Mapping) else None
    values = embedding.get("values") if isinstance(embedding, Mapping) else None
    tokens = response.get("token_count", response.get("tokenCount")) if response else None
    if values:
        return [float(x) for x in values], None, None, int(tokens) if tokens else None
    if isinstance(error, Mapping) and (error.get("code") or error.get("message")):
        code = error.get("code")
        return None, int(code) if code is not None else None, str(error.get("message", "")), None
    return None, None, "the answer holds neither an embedding nor an error", None


def _fallback_ref(e: _Entry) -> dict[str, Any]:
    """How to rebuild a media item for an online retry: its file and piece when it came
    from ``load_file`` (cheap to keep), else the content itself."""
    meta = e.item.metadata
    if {"source", "piece", "file_hash"} <= meta.keys() and source_path(meta).is_file():
        return {
            "source": str(meta["source"]),
            **({"source_escaped": True} if meta.get("source_escaped") else {}),
            "piece": meta["piece"],
            "file_hash": meta["file_hash"],
        }
    return {"content": item_json(e.prepared.item, e.prepared.text)}


def _restore(ref: Mapping[str, Any], embedder: Embedder) -> Item:
    if "content" in ref:
        parts: list[str | Media] = []
        for part in ref["content"].get("parts", []):
            if part.get("text") is not None:
                parts.append(str(part["text"]))
            elif part.get("inline_data"):
                blob = part["inline_data"]
                data = base64.urlsafe_b64decode(blob["data"])
                parts.append(Media.from_bytes(data, blob.get("mime_type")))
            elif part.get("file_data"):
                fd = part["file_data"]
                parts.append(Media.from_url(fd["file_uri"], fd.get("mime_type"), fetch=False))
        return Item(parts=tuple(parts))
    source = str(source_path(ref))
    try:
        digest = file_hash(Path(source))
    except OSError as exc:
        raise InputError(f"cannot read it again: {exc.strerror or exc}", source=source) from exc
    if digest != ref["file_hash"]:
        raise InputError("the file changed since the job was submitted", source=source)
    s = embedder.settings
    for item in load_file(
        source, s.resolved_limits, use_video_audio=s.use_video_audio, digest=digest
    ):
        if item.metadata.get("piece") == ref["piece"]:
            return item
    raise InputError(f"piece {ref['piece']} is gone", source=source)

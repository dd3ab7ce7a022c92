"""The LlamaIndex wrapper as glue over the core: a text file and the same text in a
Document are cut by one budget, and ``__call__``/``acall`` are one set of steps (the
same events, the same failures) on two drivers."""

from __future__ import annotations

from pathlib import Path

import pytest
from li_helpers import DIMS
from llama_index.core.callbacks import CallbackManager, CBEventType, EventPayload, LlamaDebugHandler
from llama_index.core.schema import Document, ImageNode, MetadataMode, TextNode

from gemb2 import LimitExceededError
from gemb2.inputs.tokens import estimate_tokens
from gemb2.testing.emulator import Emulator
from llamaindex_gemb2 import GeminiMediaNodeParser, GeminiMultiModalEmbedding

SENTENCE = "Honeybees store nectar in wax combs and fan it with their wings until it thickens. "
LONG_TEXT = SENTENCE * 120  # about 2,000 tokens


def test_a_text_file_and_its_text_are_chunked_alike(tmp_path: Path) -> None:
    """The budget for the metadata LlamaIndex puts in front of a chunk is applied once,
    whether the parser reads the file or a reader already did."""
    path = tmp_path / "notes.txt"
    path.write_text(LONG_TEXT, encoding="utf-8")
    parser = GeminiMediaNodeParser(chunk_tokens=500)
    from_file = parser.get_nodes_from_documents([Document(metadata={"file_path": str(path)})])
    read = parser.get_nodes_from_documents(
        [Document(text=LONG_TEXT, metadata={"file_path": str(path)})]
    )
    assert len(from_file) == len(read) > 3
    assert [n.get_content() for n in from_file] == [n.get_content() for n in read]
    assert [n.metadata for n in from_file] == [n.metadata for n in read]
    assert all(estimate_tokens(n.get_content()) <= 500 for n in from_file)
    for node in from_file:
        start, end = node.metadata["char_start"], node.metadata["char_end"]
        assert LONG_TEXT[start:end] == node.get_content()
        assert estimate_tokens(node.get_content(metadata_mode=MetadataMode.EMBED)) <= 8192 - 16


def _model(emulator: Emulator, handler: LlamaDebugHandler) -> GeminiMultiModalEmbedding:
    return GeminiMultiModalEmbedding(
        base_url=emulator.base_url,
        dimensions=DIMS,
        callback_manager=CallbackManager([handler]),
    )


def _nodes(media_dir: Path) -> list:
    return [
        TextNode(text="glaciers carve valleys"),
        ImageNode(image_path=str(media_dir / "red_circle.png")),
    ]


async def test_call_and_acall_report_the_same_events(emulator: Emulator, media_dir: Path) -> None:
    seen = []
    for driver in ("__call__", "acall"):
        handler = LlamaDebugHandler()
        model = _model(emulator, handler)
        nodes = _nodes(media_dir)
        out = model(nodes) if driver == "__call__" else await model.acall(nodes)
        (start, end), *more = handler.get_event_pairs(CBEventType.EMBEDDING)
        assert more == []
        assert start.payload is not None and EventPayload.SERIALIZED in start.payload
        assert end.payload is not None
        chunks = end.payload[EventPayload.CHUNKS]
        assert len(chunks) == 2 and chunks[0] == "glaciers carve valleys"
        assert end.payload[EventPayload.EMBEDDINGS] == [n.embedding for n in out]
        assert all(len(n.embedding or []) == DIMS for n in out)
        seen.append([n.embedding for n in out])
        model.close()
    assert seen[0] == [pytest.approx(v) for v in seen[1]]


async def test_call_and_acall_end_the_event_with_the_error(emulator: Emulator) -> None:
    for driver in ("__call__", "acall"):
        handler = LlamaDebugHandler()
        model = _model(emulator, handler)
        nodes = [TextNode(text="word " * 20000)]
        with pytest.raises(LimitExceededError, match="tokens"):
            if driver == "__call__":
                model(nodes)
            else:
                await model.acall(nodes)
        (_, end), *more = handler.get_event_pairs(CBEventType.EMBEDDING)
        assert more == []
        assert isinstance((end.payload or {}).get(EventPayload.EXCEPTION), LimitExceededError)
        model.close()
    assert emulator.stats.requests == 0

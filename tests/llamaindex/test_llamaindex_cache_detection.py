"""``llamaindex_gemb2._cache.in_cached_run`` reads LlamaIndex's internals (the call stack
of ``run_transformations``/``arun_transformations`` and their ``cache`` argument),
because LlamaIndex gives a transformation no other way to know it runs under
IngestionPipeline's cache. These tests fail when LlamaIndex changes under it: the
runners renamed or wrapped, ``cache`` renamed, or the cache key starting to depend on a
textless media document's content (then the refusal it guards is no longer needed)."""

from __future__ import annotations

import base64
import inspect
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from llama_index.core import VectorStoreIndex
from llama_index.core.bridge.pydantic import PrivateAttr
from llama_index.core.ingestion import IngestionCache, IngestionPipeline
from llama_index.core.ingestion import pipeline as li_pipeline
from llama_index.core.schema import BaseNode, Document, ImageDocument, TransformComponent

from gemb2.testing.emulator import Emulator
from llamaindex_gemb2 import GeminiMultiModalEmbedding
from llamaindex_gemb2._cache import RUNNERS, in_cached_run


class CacheProbe(TransformComponent):
    """A transformation that records, each time it runs, whether it is under the cache."""

    _seen: list[bool] = PrivateAttr(default_factory=list)

    def __call__(self, nodes: Sequence[BaseNode], **kwargs: Any) -> Sequence[BaseNode]:
        self._seen.append(in_cached_run())
        return nodes

    async def acall(self, nodes: Sequence[BaseNode], **kwargs: Any) -> Sequence[BaseNode]:
        self._seen.append(in_cached_run())
        return nodes


def test_the_runners_are_where_the_detection_looks() -> None:
    for name in RUNNERS:
        runner = getattr(li_pipeline, name)
        assert "cache" in inspect.signature(runner).parameters, name


def test_a_pipeline_step_knows_it_runs_under_the_cache() -> None:
    probe = CacheProbe()
    IngestionPipeline(transformations=[probe]).run(documents=[Document(text="one")])
    IngestionPipeline(transformations=[probe], cache=IngestionCache()).run(
        documents=[Document(text="two")]
    )
    IngestionPipeline(transformations=[probe], disable_cache=True).run(
        documents=[Document(text="three")]
    )
    probe([Document(text="four")])  # called directly: no pipeline, no cache
    assert probe._seen == [True, True, False, False]


async def test_an_async_pipeline_step_knows_it_too() -> None:
    probe = CacheProbe()
    await IngestionPipeline(transformations=[probe]).arun(documents=[Document(text="one")])
    await IngestionPipeline(transformations=[probe], disable_cache=True).arun(
        documents=[Document(text="two")]
    )
    assert probe._seen == [True, False]


def test_an_index_runs_its_transformations_without_the_cache(emulator: Emulator) -> None:
    probe = CacheProbe()
    embed_model = GeminiMultiModalEmbedding(base_url=emulator.base_url, dimensions=128)
    VectorStoreIndex.from_documents(
        [Document(text="glaciers carve valleys")],
        transformations=[probe, embed_model],
        embed_model=embed_model,
    )
    embed_model.close()
    assert probe._seen == [False]


def test_the_cache_still_keys_textless_media_alike(media_dir: Path) -> None:
    """Why a textless media document is refused under the cache: LlamaIndex's key for a
    step is the same for two different images."""
    red, blue = (
        ImageDocument(image=base64.b64encode((media_dir / name).read_bytes()).decode())
        for name in ("red_circle.png", "blue_square.png")
    )
    probe = CacheProbe()
    key = li_pipeline.get_transformation_hash
    assert key([red], probe) == key([blue], probe)
    assert key([Document(text="a")], probe) != key([Document(text="b")], probe)

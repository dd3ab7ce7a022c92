"""Whether a step runs under IngestionPipeline's cache, and what must be refused there.

``IngestionPipeline`` caches each transformation under a hash of its input nodes'
``get_content(metadata_mode=ALL)`` and the transformation's ``to_dict()``
(``llama_index.core.ingestion.pipeline.get_transformation_hash``). For a ``Document``
or ``ImageDocument`` without text that content is ``""``, so every such media node
would share one entry and a later image would be served this one's result. The key is
fixed before the step is called and a hit never calls it, so a step can only refuse
such nodes on the first run, and only if it knows a cache is in use.

LlamaIndex gives a step no way to know: ``run_transformations``/``arun_transformations``
call ``transform(nodes, **kwargs)`` with the caller's ``pipeline.run(**kwargs)`` only
(no flag for the cache), and the hash reads ``to_dict()`` without the nodes. So
``in_cached_run`` looks up the call stack for those two functions and reads their
``cache`` argument: the one place this package inspects LlamaIndex's internals.
``tests/llamaindex/test_llamaindex_cache_detection.py`` fails if LlamaIndex renames
them, drops the ``cache`` argument, or starts keying textless media on their content
(then the refusal is no longer needed).
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Sequence
from types import CodeType, FrameType

from llama_index.core.ingestion import pipeline as _pipeline
from llama_index.core.schema import BaseNode, MetadataMode

from gemb2 import InputError
from gemb2.inputs.detect import is_file_read_as_text

from ._media import own_text

RUNNERS = ("run_transformations", "arun_transformations")


def _runner_codes() -> tuple[CodeType, ...]:
    funcs = [getattr(_pipeline, n, None) for n in RUNNERS]
    return tuple(inspect.unwrap(f).__code__ for f in funcs if f is not None)


_RUNNERS = _runner_codes()


def in_cached_run() -> bool:
    """Whether LlamaIndex's ``run_transformations`` is running this step with a cache
    (every ``IngestionPipeline`` has one unless ``disable_cache=True``; an index's
    ``from_documents`` runs its transformations without). Call it on the step's own
    thread: an async step asks before handing work to a thread."""
    frame: FrameType | None = sys._getframe(1)
    while frame is not None:
        if frame.f_code in _RUNNERS:
            return frame.f_locals.get("cache", True) is not None
        frame = frame.f_back
    return False


def keyed_on_content(node: BaseNode) -> bool:
    """Whether IngestionPipeline's cache key for this media node depends on the media:
    its ``get_content(metadata_mode=ALL)`` (what LlamaIndex hashes) holds the
    node's ``file_hash``, or the media's own bytes read as text."""
    content = node.get_content(metadata_mode=MetadataMode.ALL)
    digest = node.metadata.get("file_hash")
    if digest and str(digest) in content:
        return True
    file_path = node.metadata.get("file_path")
    return bool(file_path) and is_file_read_as_text(own_text(node), str(file_path))


def cache_refusal(names: Sequence[str]) -> InputError:
    """The error for media nodes IngestionPipeline's cache cannot tell apart."""
    more = f" (and {len(names) - 1} more)" if len(names) > 1 else ""
    return InputError(
        f"media node{more} has nothing in its text or metadata that depends on its "
        "content, and IngestionPipeline caches each step under its input nodes' "
        "get_content(metadata_mode=ALL), so another image or file would later be "
        "served this one's cached result. Call llamaindex_gemb2.label_media(documents) "
        "before pipeline.run, load files with GeminiMediaReader (also as "
        "SimpleDirectoryReader's file_extractor), or pass disable_cache=True",
        source=names[0],
    )

"""Reads from a Chroma collection in pages: a server refuses a ``get`` that would return
more than its quota (Chroma Cloud: 300 results), and a resume check, a migration or a
consistency check may ask for thousands of records at once.

``paged_get(collection, limits, **kwargs)`` takes ``Collection.get``'s arguments and gives
its answer: ``ids=`` are asked for in chunks of ``limits.max_results_per_read``, anything
else (``where=``, or the whole collection) page by page with ``limit``/``offset``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from gemb2.stores.limits import ChromaWriteLimits

_FIELDS = ("embeddings", "metadatas", "documents", "uris", "data")


def paged_get(collection: Any, limits: ChromaWriteLimits | None = None, **kwargs: Any) -> Any:
    """``collection.get(**kwargs)`` sent as reads of at most ``max_results_per_read``
    records each (default: by the collection's kind, see ``ChromaWriteLimits``). A call
    that names its own ``limit`` or ``offset`` is passed on as it is."""
    limits = limits if limits is not None else ChromaWriteLimits.for_collection(collection)
    bound = limits.max_results_per_read
    if bound is None or "limit" in kwargs or "offset" in kwargs:
        return collection.get(**kwargs)
    ids = kwargs.pop("ids", None)
    if ids is not None:
        ids = list(ids)
        return _merged(
            collection.get(ids=ids[i : i + bound], **kwargs)
            for i in range(0, max(len(ids), 1), bound)
        )
    return _merged(_pages(collection, bound, kwargs))


def _pages(collection: Any, bound: int, kwargs: dict[str, Any]) -> Iterator[Any]:
    offset = 0
    while True:
        page = collection.get(limit=bound, offset=offset, **kwargs)
        yield page
        if len(page["ids"]) < bound:
            return
        offset += bound


def _merged(pages: Any) -> dict[str, Any]:
    """One answer of the shape ``get`` gives, from the pages in order."""
    out: dict[str, Any] = {"ids": []}
    for page in pages:
        out["ids"].extend(page["ids"])
        out.setdefault("included", page.get("included"))
        for field in _FIELDS:
            values = page.get(field)
            if values is None:
                out.setdefault(field, None)
            else:
                if out.get(field) is None:
                    out[field] = []
                out[field].extend(list(values))
    return out

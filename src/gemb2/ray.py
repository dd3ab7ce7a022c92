"""Ray Data: embed a dataset's rows with ``ds.map_batches(EmbedBatch, ...)``.

``EmbedBatch`` is a callable class for ``Dataset.map_batches``: Ray builds one per actor
(``compute=ActorPoolStrategy(size=N)``; ``concurrency=N`` before Ray 2.51), so each
actor builds its ``Embedder`` once, on the worker, from the settings it was handed
(never a client pickled on the driver). A row is one item: its text column, its media
column (a path or URI, or the file's bytes), or both as one interleaved item. The
vector is appended as a new column, one per row, in the batch's own format
(``"default"``/``"numpy"``, ``"pandas"`` or ``"pyarrow"``). Every row is checked by
the core before any call, and a bad row's error names it.

Every actor paces itself alone unless the settings name a shared ``limiter``
(``sqlite:///PATH`` for the actors of one machine, ``redis://HOST:PORT/DB`` for a
cluster): the quota is the project's, whoever sends.

``RayEmbedder`` stands in for an ``Embedder`` where the core hands it Items
(``gemb2.ingest.indexer.index_paths``): the driver loads and splits the files and keeps
the bookkeeping; the items go through Ray Data and their vectors land batch by batch.

The only module of gemb2 that imports Ray (``pip install 'gemb2[ray]'``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from gemb2.engine.embedder import Embedder
from gemb2.engine.planning import OnBatch
from gemb2.engine.settings import EmbedSettings
from gemb2.errors import ConfigError, Gemb2Error, InputError
from gemb2.inputs.media import Item, Media
from gemb2.model.tasks import Role

__all__ = ["EmbedBatch", "RayEmbedder"]

EmbedderFactory = Callable[[], Embedder]


class EmbedBatch:
    """A ``map_batches`` callable: the rows' items in, the same rows plus a vector column out.

    >>> ds.map_batches(EmbedBatch, fn_constructor_kwargs={"text_column": "text",
    ...     "dimensions": 768, "limiter": "sqlite:///quota.sqlite"},
    ...     compute=ray.data.ActorPoolStrategy(size=2))  # doctest: +SKIP

    ``text_column`` and ``media_column`` name the columns to embed (neither: ``"text"``);
    a null (None, NaN) leaves that part out of the row's item, and a row with neither
    is refused. A media value is a path or URI (``str``) or the file's bytes (its type
    sniffed from the content). An error's item number counts rows within the batch;
    ``id_column`` names a column that identifies the row in it. ``settings`` and
    ``overrides`` are ``EmbedSettings`` fields, as for ``Embedder``; ``embedder`` is
    instead a picklable factory of the ``Embedder`` to use (e.g. one on a
    ``FakeTransport``), called once on each worker.
    """

    def __init__(
        self,
        *,
        text_column: str | None = None,
        media_column: str | None = None,
        vector_column: str = "embedding",
        id_column: str | None = None,
        role: Role = "document",
        settings: EmbedSettings | None = None,
        embedder: EmbedderFactory | None = None,
        **overrides: Any,
    ) -> None:
        if text_column is None and media_column is None:
            text_column = "text"
        if embedder is not None and (settings is not None or overrides):
            raise ConfigError("pass either embedder= (a factory) or settings, not both")
        if embedder is not None and not callable(embedder):
            raise ConfigError(
                "embedder= takes a factory (a function returning an Embedder, called on "
                "each worker), not an Embedder: a client cannot be pickled to the workers"
            )
        self._args: dict[str, Any] = dict(
            text_column=text_column,
            media_column=media_column,
            vector_column=vector_column,
            id_column=id_column,
            role=role,
            settings=settings,
            embedder=embedder,
            **overrides,
        )
        self.text_column, self.media_column = text_column, media_column
        self.vector_column, self.id_column, self.role = vector_column, id_column, role
        built = embedder() if embedder is not None else Embedder(settings, **overrides)
        if not isinstance(built, Embedder):
            raise ConfigError(f"embedder= returned a {type(built).__name__}, not an Embedder")
        self.embedder = built

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled as its arguments: a worker builds its own Embedder (and client)."""
        return (_rebuild, (self._args,))

    def __repr__(self) -> str:
        cols = [c for c in (self.text_column, self.media_column) if c]
        return (
            f"EmbedBatch(columns={cols!r}, vector_column={self.vector_column!r}, {self.embedder!r})"
        )

    def __call__(self, batch: Any) -> Any:
        """The batch with ``vector_column`` added: a dict of numpy arrays, a pandas
        DataFrame or a pyarrow Table, as Ray hands it."""
        kind, columns, rows = _columns(batch)
        items = self.items(columns, rows)
        vectors = np.asarray(self.embed(items, columns), dtype=np.float64)
        vectors = vectors.reshape(len(items), self.embedder.dimensions)
        if kind == "numpy":
            out = dict(batch)
            out[self.vector_column] = vectors
            return out
        if kind == "pandas":
            out_df = batch.copy(deep=False)
            out_df[self.vector_column] = list(vectors)
            return out_df
        from ray.data.extensions import ArrowTensorArray

        if self.vector_column in batch.column_names:
            batch = batch.drop_columns([self.vector_column])
        return batch.append_column(self.vector_column, ArrowTensorArray.from_numpy(vectors))

    def items(self, columns: dict[str, list[Any]], rows: int) -> list[Item]:
        """One Item per row; a row that cannot be one raises the core's error, naming it."""
        texts = self._column(columns, self.text_column, rows)
        media = self._column(columns, self.media_column, rows)
        items: list[Item] = []
        for i in range(rows):
            try:
                items.append(_item(texts[i], media[i]))
            except InputError as exc:
                raise self._at(exc, i, columns) from exc
        return items

    def embed(self, items: list[Item], columns: dict[str, list[Any]]) -> list[list[float]]:
        try:
            return self.embedder.embed(items, role=self.role)
        except InputError as exc:
            if exc.item is None:
                raise
            raise self._at(exc, exc.item, columns) from exc

    def close(self) -> None:
        self.embedder.close()

    def _column(self, columns: dict[str, list[Any]], name: str | None, rows: int) -> list[Any]:
        if name is None:
            return [None] * rows
        if name not in columns:
            raise ConfigError(
                f"the batch has no column {name!r} (its columns: {', '.join(columns)})"
            )
        return columns[name]

    def _at(self, exc: InputError, row: int, columns: dict[str, list[Any]]) -> InputError:
        """The error re-addressed to the row (by ``id_column``, when named)."""
        where = None
        if self.id_column and self.id_column in columns:
            where = f"{self.id_column}={columns[self.id_column][row]!r}"
            if exc.source:
                where += f", {exc.source}"
        return exc.at(row, where)


def _rebuild(args: dict[str, Any]) -> EmbedBatch:
    return EmbedBatch(**args)


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _item(text: Any, media: Any) -> Item:
    """A row's text and media as one item (text first when both are there)."""
    parts: list[str | Media] = []
    if not _missing(text):
        if not isinstance(text, str):
            raise InputError(f"the text column holds a {type(text).__name__}, not a str")
        parts.append(text)
    if not _missing(media):
        if isinstance(media, (bytes, bytearray, memoryview)):
            parts.append(Media.from_bytes(bytes(media)))
        elif isinstance(media, str):
            parts.extend(Item.from_uri(media).parts)
        else:
            raise InputError(
                f"the media column holds a {type(media).__name__}",
                limit="a path or URI (str) or the file's bytes",
            )
    if not parts:
        raise InputError("the row has neither text nor media (both are null)")
    return Item(parts=tuple(parts))


def _columns(batch: Any) -> tuple[str, dict[str, list[Any]], int]:
    """The batch's format and its columns as Python lists (nulls as None)."""
    if isinstance(batch, dict):
        cols = {k: np.asarray(v).tolist() for k, v in batch.items()}
        rows = len(next(iter(cols.values()))) if cols else 0
        return "numpy", cols, rows
    module = type(batch).__module__.split(".")[0]
    if module == "pandas":
        # pandas' missing values (NaN, None, pd.NA of its string dtype) as None
        cols = {
            str(k): batch[k].astype(object).where(batch[k].notna(), None).tolist()
            for k in batch.columns
        }
        return "pandas", cols, len(batch)
    if module == "pyarrow":
        cols = {k: batch.column(k).to_pylist() for k in batch.column_names}
        return "pyarrow", cols, batch.num_rows
    raise ConfigError(f"cannot embed a batch of type {type(batch).__name__}")


# -- the stand-in for an Embedder (index_paths) -----------------------------------------


class RayEmbedder:
    """An ``Embedder`` whose ``embed`` sends the items through Ray Data: one
    ``EmbedBatch`` actor per ``concurrency``, each with ``embedder``'s settings (or
    ``worker_embedder``, a factory), ``rows_per_batch`` items per actor call. Everything
    else (settings, model, dimensions, ``prepare``) is the driver's ``embedder``, which
    sends nothing itself. ``sent`` counts the items handed to the workers."""

    def __init__(
        self,
        embedder: Embedder,
        *,
        concurrency: int = 2,
        rows_per_batch: int = 100,
        worker_embedder: EmbedderFactory | None = None,
        **map_batches_kwargs: Any,
    ) -> None:
        self._embedder = embedder
        self.concurrency = concurrency
        self.rows_per_batch = rows_per_batch
        self._worker = worker_embedder
        self._kwargs = map_batches_kwargs
        self.sent = 0

    def __getattr__(self, name: str) -> Any:  # settings, model, dimensions, prepare, usage
        return getattr(self._embedder, name)

    def embed(
        self,
        items: Sequence[Item],
        *,
        role: Role = "document",
        progress: bool = False,
        on_batch: OnBatch | None = None,
        **kwargs: Any,
    ) -> list[list[float]]:
        """One vector per item, in order; ``on_batch(indices, vectors)`` as each Ray
        batch comes back (so the caller stores work as it lands)."""
        import pyarrow as pa
        import ray

        items = list(items)
        if not items:
            return []
        texts, media = _rows(items)
        step = self.rows_per_batch
        tables = [
            pa.table(
                {
                    "row": pa.array(range(lo, min(lo + step, len(items))), pa.int64()),
                    "text": pa.array(texts[lo : lo + step], pa.string()),
                    "media": pa.array(media[lo : lo + step], pa.binary()),
                }
            )
            for lo in range(0, len(items), step)
        ]
        args: dict[str, Any] = {"text_column": "text", "media_column": "media", "role": role}
        if self._worker is not None:
            args["embedder"] = self._worker
        else:
            args["settings"] = self._embedder.settings
        ds = ray.data.from_arrow(tables).map_batches(
            EmbedBatch,
            fn_constructor_kwargs=args,
            batch_size=step,
            batch_format="pyarrow",
            compute=ray.data.ActorPoolStrategy(size=self.concurrency),
            **self._kwargs,
        )
        out: list[list[float] | None] = [None] * len(items)
        self.sent += len(items)
        # a worker's error reaches here as Ray's UserCodeException, our message in its text
        for got in ds.iter_batches(batch_format="numpy", batch_size=None):
            indices = [int(r) for r in got["row"]]
            vectors = [[float(x) for x in v] for v in got["embedding"]]
            for i, v in zip(indices, vectors, strict=True):
                out[i] = v
            if on_batch is not None:
                on_batch(indices, vectors)
        missing = [i for i, v in enumerate(out) if v is None]
        if missing:  # Ray lost rows: never hand back misaligned vectors
            raise Gemb2Error(f"Ray Data returned no vector for {len(missing)} of the items")
        return [v for v in out if v is not None]


def _rows(items: Sequence[Item]) -> tuple[list[str | None], list[bytes | None]]:
    """Each item as a row's text and media: text, one media, or text then one media."""
    texts: list[str | None] = []
    media: list[bytes | None] = []
    for i, item in enumerate(items):
        parts = item.parts
        text = parts[0] if parts and isinstance(parts[0], str) else None
        rest = parts[1:] if text is not None else parts
        if len(rest) > 1 or any(isinstance(p, str) for p in rest) or item.title:
            raise InputError(
                "a Ray Data row holds a text, one media, or a text then one media",
                item=i,
                source=item.name,
            )
        texts.append(text)
        media.append(rest[0].read() if rest else None)  # type: ignore[union-attr]
    return texts, media

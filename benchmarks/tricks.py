"""Speed tricks in src/ against their plain versions, side by side in one process.

Issue 17: a trick stays only while a row here shows it winning by more than 5% on the
case it is for; the plain version lives only here, as the comparison. Each CPU row
alternates trick and plain ``repeat`` times in one process (so both see the same
machine) and keeps the least CPU of each, as the overhead case does. Peak memory
(``bound_malloc``) needs a fresh process per side: run.py runs the memory job with and
without it. Imports gemb2 lazily: worker.py also runs under the anchors' venv.
"""

from __future__ import annotations

import gc
import re
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

# the regex the byte tables reproduce (``gemb2.inputs.tokens``): one C-level scan per text
_WORD = re.compile(r"\w+|[^\w\s]", re.UNICODE)


def plain_word_count(text: str) -> int:
    """``word_count`` without the byte tables: the regex itself."""
    return len(_WORD.findall(text))


def plain_utf8_len(text: str) -> int:
    """``utf8_len`` without the ``isascii`` shortcut: encode and count."""
    return len(text.encode("utf-8"))


def plain_item_class() -> type:
    """``Item`` with ``functools.cached_property`` for ``media``, ``texts`` and ``text``
    instead of fields set in ``__post_init__``. A subclass, so the engine takes it as an
    Item unchanged; the parent's fields have no class attribute to shadow these."""
    from functools import cached_property

    from gemb2.inputs.media import Item, Media

    class PlainItem(Item):
        def __post_init__(self) -> None:
            pass

        @cached_property
        def media(self) -> list[Media]:  # type: ignore[override]
            return [p for p in self.parts if isinstance(p, Media)]

        @cached_property
        def texts(self) -> list[str]:  # type: ignore[override]
            return [p for p in self.parts if isinstance(p, str)]

        @cached_property
        def text(self) -> str:  # type: ignore[override]
            texts = self.texts
            return texts[0] if len(texts) == 1 else "\n".join(texts)

    return PlainItem


def _read_fields(item: Any) -> tuple[Any, ...]:
    """What the engine asks of a text item on its way (limits, conditioning, sizing)."""
    return (item.texts, item.media, item.text, item.is_text_only, item.modality, item.text)


@contextmanager
def swapped(original: Callable[..., Any], plain: Callable[..., Any]) -> Iterator[None]:
    """Every gemb2 module's reference to ``original`` points at ``plain`` meanwhile
    (``from gemb2.inputs.tokens import word_count`` binds the name in each importer)."""
    patched = []
    for name, module in list(sys.modules.items()):
        if not name.startswith(("gemb2", "langchain_gemb2", "llamaindex_gemb2")):
            continue
        for attr, value in list(vars(module).items()):
            if value is original:
                patched.append((module, attr))
                setattr(module, attr, plain)
    try:
        yield
    finally:
        for module, attr in patched:
            setattr(module, attr, original)


def _best(
    fn: Callable[[], Any], number: int, *, collect: bool = False
) -> tuple[Any, float, float]:
    """(last result, CPU s, wall s) of ``number`` calls in a row; with ``collect`` the
    garbage collector is off meanwhile, as ``timeit`` does, so a collection that one
    side's allocations happen to trigger does not land in its time."""
    gc.collect()
    if collect:
        gc.disable()
    try:
        c0, t0 = time.process_time(), time.perf_counter()
        for _ in range(number):
            out = fn()
        return out, time.process_time() - c0, time.perf_counter() - t0
    finally:
        gc.enable()


def compare(
    trick: Callable[[], Any], plain: Callable[[], Any], *, repeat: int, number: int = 1
) -> dict[str, Any]:
    """Trick and plain alternating ``repeat`` times; the least CPU (and wall) of each, and
    whether they returned the same thing."""
    runs: dict[str, list[tuple[float, float]]] = {"trick": [], "plain": []}
    same = True
    for _ in range(repeat):
        a, cpu, wall = _best(trick, number, collect=True)
        runs["trick"].append((cpu, wall))
        b, cpu, wall = _best(plain, number, collect=True)
        runs["plain"].append((cpu, wall))
        same = same and a == b
    out: dict[str, Any] = {"same_result": same, "calls": number}
    for side, rs in runs.items():
        out[side] = {
            "cpu_s": min(c for c, _ in rs) / number,
            "wall_s": min(w for _, w in rs) / number,
            "tries_cpu_s": [c / number for c, _ in rs],
        }
    out["plain_over_trick"] = out["plain"]["cpu_s"] / out["trick"]["cpu_s"]
    return out


def long_document(texts: list[str], sentences: int) -> str:
    """Paragraphs of five corpus sentences: a long .txt file that has to be split."""
    picked = texts[:sentences]
    return "\n\n".join(" ".join(picked[i : i + 5]) for i in range(0, len(picked), 5))


def _facts(prepared: list[Any]) -> list[tuple[Any, ...]]:
    """What ``Embedder.prepare`` decided per item, without the Item itself."""
    return [(p.index, p.text, p.tokens, p.modality, p.size) for p in prepared]


def tricks_cpu(
    job: dict[str, Any], texts: list[str], warm: Callable[[Any], None]
) -> dict[str, Any]:
    """The CPU tricks, each on its case, against the emulator at zero latency.

    On the embed path a trick only changes ``Embedder.prepare`` (coercion, limits, task
    prefixes), so trick and plain are timed there, where the difference is not lost in
    the noise of threads and HTTP; the saving is then put against the CPU per item of
    the whole ``Embedder.embed`` (``embed`` row), which is what the user pays."""
    from gemb2 import Embedder
    from gemb2.inputs import tokens
    from gemb2.inputs.media import Item
    from gemb2.segment import split_text

    repeat = int(job.get("repeat", 9))
    emb = Embedder(base_url=job["base_url"], dimensions=job["dims"])
    warm(emb)
    doc = long_document(texts, len(texts))
    n = len(texts)
    rows: dict[str, Any] = {}

    def row(key: str, items: int, result: dict[str, Any]) -> None:
        rows[key] = {**result, "items": items}

    def prepare() -> list[tuple[Any, ...]]:
        return _facts(emb.prepare(texts))

    # the whole embed path as shipped: what a saving in prepare is measured against
    vectors = emb.embed(texts)
    embed_cpu = []
    for _ in range(repeat):
        out, cpu, _wall = _best(lambda: emb.embed(texts), 1)
        embed_cpu.append(cpu)
    rows["embed"] = {
        "items": n,
        "same_result": out == vectors,
        "trick": {"cpu_s": min(embed_cpu), "tries_cpu_s": embed_cpu},
    }

    # byte-table token counting: the count itself, splitting a long text (where counting
    # is most of the work) and the embed path's checks (one count per text)
    row(
        "word_count",
        n,
        compare(
            lambda: [tokens.word_count(t) for t in texts],
            lambda: [plain_word_count(t) for t in texts],
            repeat=repeat,
            number=5,
        ),
    )

    def split() -> list[tuple[int | None, int | None]]:
        return [(s.char_start, s.char_end) for s in split_text(doc, max_tokens=8000)]

    def split_plain() -> list[tuple[int | None, int | None]]:
        with swapped(tokens.word_count, plain_word_count):
            return split()

    row("split_text", 1, compare(split, split_plain, repeat=repeat, number=3))
    rows["split_text"]["chars"] = len(doc)

    def prepare_plain_count() -> list[tuple[Any, ...]]:
        with swapped(tokens.word_count, plain_word_count):
            return prepare()

    row("prepare_word_count", n, compare(prepare, prepare_plain_count, repeat=repeat, number=3))

    # the isascii shortcut of utf8_len: the count, and the embed path (payload sizes)
    row(
        "utf8_len",
        n,
        compare(
            lambda: [tokens.utf8_len(t) for t in texts],
            lambda: [plain_utf8_len(t) for t in texts],
            repeat=repeat,
            number=20,
        ),
    )

    def prepare_plain_len() -> list[tuple[Any, ...]]:
        with swapped(tokens.utf8_len, plain_utf8_len):
            return prepare()

    row("prepare_utf8_len", n, compare(prepare, prepare_plain_len, repeat=repeat, number=3))

    # Item's fields set in __post_init__ vs cached_property: building and reading one
    # item, and the embed path from texts (where every text becomes an Item)
    plain_item = plain_item_class()
    row(
        "item_fields",
        n,
        compare(
            lambda: [_read_fields(Item(parts=(t,))) for t in texts],
            lambda: [_read_fields(plain_item(parts=(t,))) for t in texts],
            repeat=repeat,
            number=3,
        ),
    )
    row(
        "prepare_item",
        n,
        compare(
            lambda: _facts(emb.prepare([Item(parts=(t,)) for t in texts])),
            lambda: _facts(emb.prepare([plain_item(parts=(t,)) for t in texts])),
            repeat=repeat,
            number=3,
        ),
    )
    embed_per_item = rows["embed"]["trick"]["cpu_s"] / n
    for key in ("prepare_word_count", "prepare_utf8_len", "prepare_item"):
        r = rows[key]
        saved = (r["plain"]["cpu_s"] - r["trick"]["cpu_s"]) / n
        r["saved_s_per_item"] = saved
        r["share_of_embed"] = saved / embed_per_item  # the trick's win on the embed path
    return {"status": "ok", "note": "", "rows": rows, "texts": n}

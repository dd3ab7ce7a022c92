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


def _best(fn: Callable[[], Any], number: int, *, collect: bool = False) -> tuple[Any, float, float]:
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
    """The CPU tricks (today one: the byte-table word count), each on its case, against
    the emulator at zero latency.

    On the embed path a trick only changes ``Embedder.prepare`` (coercion, limits, task
    prefixes), so trick and plain are timed there, where the difference is not lost in
    the noise of threads and HTTP; the saving is then put against the CPU per item of
    the whole ``Embedder.embed`` (``embed`` row), which is what the user pays."""
    from gemb2 import Embedder
    from gemb2.inputs import tokens
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

    r = rows["prepare_word_count"]
    r["saved_s_per_item"] = (r["plain"]["cpu_s"] - r["trick"]["cpu_s"]) / n
    r["share_of_embed"] = r["saved_s_per_item"] / (rows["embed"]["trick"]["cpu_s"] / n)
    return {"status": "ok", "note": "", "rows": rows, "texts": n}

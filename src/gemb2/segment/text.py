"""Text over the token limit, cut into chunks at the strongest boundary that fits.

The chunker tiles the text with sentence-sized atoms (cut further at words and
characters when a sentence alone is too long) whose token estimates add up, so a
chunk's cost is known in O(1); each chunk keeps its character range in the source.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from gemb2.inputs.tokens import estimate_tokens, utf8_len, word_count
from gemb2.segment.record import Segment

__all__ = ["split_text"]


# After a sentence end (with closing quotes/brackets) and its whitespace, or after a newline run.
_BREAK = re.compile(r"[.!?…。！？][\"'”’)\]]*\s+|\n\s*")
_SPACE = re.compile(r"\s+")

# boundary strength at the end of an atom
_CHAR, _WORDB, _SENTENCE, _LINE, _PARAGRAPH, _END = -1, 0, 1, 2, 3, 4


@dataclass
class _Atom:
    start: int
    end: int
    strength: int
    nbytes: int = 0
    nwords: int = 0


def _cost(nbytes: int, nwords: int) -> int:
    """``estimate_tokens`` from its two additive counts (bytes and word-like runs)."""
    if nbytes == 0:
        return 0
    return max(math.ceil(nbytes / 4), math.ceil(nwords * 4 / 3))


def _counted(text: str, start: int, end: int, strength: int) -> _Atom:
    piece = text[start:end]
    return _Atom(start, end, strength, utf8_len(piece), word_count(piece))


def _break_strength(sep: str) -> int:
    newlines = sep.count("\n")
    if newlines >= 2:
        return _PARAGRAPH
    if newlines == 1:
        return _LINE
    return _SENTENCE


def _atoms(text: str, max_tokens: int) -> list[_Atom]:
    """Tile ``text`` with sentence-sized atoms, each within ``max_tokens``; sentences
    that are too long are cut at words, words that are too long at characters.
    Atoms end after their trailing whitespace, so no word straddles two atoms and
    the counts of neighbouring atoms add up (character cuts only over-count)."""
    atoms: list[_Atom] = []
    pos = 0
    spans: list[tuple[int, int, int]] = []
    for m in _BREAK.finditer(text):
        if m.end() > pos:
            spans.append((pos, m.end(), _break_strength(m.group())))
            pos = m.end()
    if pos < len(text):
        spans.append((pos, len(text), _END))
    for start, end, strength in spans:
        atom = _counted(text, start, end, strength)
        if _cost(atom.nbytes, atom.nwords) <= max_tokens:
            atoms.append(atom)
            continue
        # too long a sentence: cut at whitespace
        wpos = start
        words: list[tuple[int, int, int]] = []
        for m in _SPACE.finditer(text, start, end):
            if m.end() > wpos and m.end() < end:
                words.append((wpos, m.end(), _WORDB))
                wpos = m.end()
        words.append((wpos, end, strength))
        for wstart, wend, wstrength in words:
            watom = _counted(text, wstart, wend, wstrength)
            if _cost(watom.nbytes, watom.nwords) <= max_tokens:
                atoms.append(watom)
            else:
                atoms.extend(_hard_cut(text, wstart, wend, wstrength, max_tokens))
    return atoms


def _hard_cut(text: str, start: int, end: int, strength: int, max_tokens: int) -> list[_Atom]:
    """Cut one over-long word into the longest character runs that fit."""
    out: list[_Atom] = []
    while start < end:
        lo, hi = start + 1, end
        while lo < hi:  # largest stop with estimate <= max_tokens
            mid = (lo + hi + 1) // 2
            if estimate_tokens(text[start:mid]) <= max_tokens:
                lo = mid
            else:
                hi = mid - 1
        out.append(_counted(text, start, lo, strength if lo == end else _CHAR))
        start = lo
    return out


def split_text(
    text: str, *, max_tokens: int, overlap_tokens: int = 0, name: str | None = None
) -> list[Segment]:
    """Chunks of at most ``max_tokens`` (by ``estimate_tokens``), cut at the strongest
    boundary available (paragraph, line, sentence, word, character), consecutive
    chunks sharing about ``overlap_tokens`` of text. ``text[char_start:char_end]``
    is exactly each chunk; chunks are stripped of surrounding whitespace."""
    if max_tokens < 1:
        raise ValueError("max_tokens must be at least 1")
    if overlap_tokens < 0 or overlap_tokens >= max_tokens:
        raise ValueError("overlap_tokens must be in 0..max_tokens-1")
    name = name or "<text>"
    atoms = _atoms(text, max_tokens)
    n = len(atoms)
    # prefix sums of the additive counts, so any atom range costs O(1)
    pb = [0] * (n + 1)
    pw = [0] * (n + 1)
    for i, a in enumerate(atoms):
        pb[i + 1] = pb[i] + a.nbytes
        pw[i + 1] = pw[i] + a.nwords

    def cost(i: int, j: int) -> int:  # atoms i..j inclusive
        return _cost(pb[j + 1] - pb[i], pw[j + 1] - pw[i])

    spans: list[tuple[int, int]] = []
    i = 0
    while i < n:
        j = i
        while j + 1 < n and cost(i, j + 1) <= max_tokens:
            j += 1
        end = j
        if j < n - 1:
            # prefer the strongest boundary in the chunk's second half
            full = cost(i, j)
            best = j
            for k in range(j, i - 1, -1):
                if cost(i, k) * 2 < full:
                    break
                if atoms[k].strength > atoms[best].strength:
                    best = k
            end = best
        start_char, end_char = atoms[i].start, atoms[end].end
        chunk = text[start_char:end_char]
        stripped = chunk.strip()
        if stripped:
            lead = len(chunk) - len(chunk.lstrip())
            spans.append((start_char + lead, start_char + lead + len(stripped)))
        if end == n - 1:
            break
        nxt = end + 1
        if overlap_tokens:
            for k in range(i + 1, end + 1):
                if cost(k, end) <= overlap_tokens:
                    nxt = k
                    break
        i = nxt

    count = len(spans)
    return [
        Segment(
            None,
            text[s:e],
            "text/plain",
            "text",
            name,
            index,
            count,
            char_start=s,
            char_end=e,
        )
        for index, (s, e) in enumerate(spans)
    ]


def text_segments(text: str, name: str, max_tokens: int) -> list[Segment]:
    """A text as the pieces an item may be, leaving room for the task prefix within
    ``max_tokens``: one piece when it fits, else ``split_text``'s. The one rule for text
    read from a file and text a framework hands over."""
    from gemb2.model.tasks import PREFIX_TOKENS

    budget = max(1, max_tokens - PREFIX_TOKENS)
    if estimate_tokens(text) <= budget:
        return [
            Segment(None, text, "text/plain", "text", name, 0, 1, char_start=0, char_end=len(text))
        ]
    return split_text(text, max_tokens=budget, name=name)

"""Token estimate for text limits.

The SDK's local tokenizer downloads its model at run time, so it cannot be used
offline; this estimate leans high (about 4 UTF-8 bytes or 0.75 words a token) so
that an item that passes the check also passes the service's.
"""

from __future__ import annotations

import math
import re

_WORD = re.compile(r"\w+|[^\w\s]", re.UNICODE)

# The same count for ASCII text with two C-level byte passes (4x the regex a sentence,
# 1.5x for split_text: benchmarks/run.py --cases tricks): word runs are what ``split``
# leaves once every other byte is a space; the punctuation is what deleting word and
# space bytes leaves. Both tables come from the regex's own classes, so the counts agree
# (a test compares them).
_ASCII_WORD = bytes(c for c in range(128) if re.match(r"\w", chr(c)))
_ASCII_SPACE = bytes(c for c in range(128) if re.match(r"\s", chr(c)))
_ONLY_WORDS = bytes(c if c in _ASCII_WORD else 0x20 for c in range(256))
_NOT_PUNCTUATION = _ASCII_WORD + _ASCII_SPACE


def word_count(text: str) -> int:
    """Word-like runs and punctuation marks: matches of ``\\w+|[^\\w\\s]``."""
    if text.isascii():
        raw = text.encode("ascii")
        return len(raw.translate(_ONLY_WORDS).split()) + len(raw.translate(None, _NOT_PUNCTUATION))
    return len(_WORD.findall(text))


def utf8_len(text: str) -> int:
    """Bytes of ``text`` in UTF-8 (what the request carries)."""
    return len(text.encode("utf-8"))


def estimate_tokens(text: str) -> int:
    if not text:
        return 0
    by_bytes = math.ceil(utf8_len(text) / 4)
    by_words = math.ceil(word_count(text) * 4 / 3)
    return max(by_bytes, by_words)

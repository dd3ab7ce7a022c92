"""Token estimate for text limits.

The SDK's local tokenizer downloads its model at run time, so it cannot be used
offline; this estimate leans high (about 4 UTF-8 bytes or 0.75 words a token) so
that an item that passes the check also passes the service's.
"""

from __future__ import annotations

import math
import re

_WORD = re.compile(r"\w+|[^\w\s]", re.UNICODE)


def estimate_tokens(text: str) -> int:
    if not text:
        return 0
    nbytes = len(text) if text.isascii() else len(text.encode("utf-8"))
    by_bytes = math.ceil(nbytes / 4)
    by_words = math.ceil(len(_WORD.findall(text)) * 4 / 3)
    return max(by_bytes, by_words)

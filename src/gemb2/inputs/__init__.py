"""What a user hands in, as the engine sees it: ``Item`` and ``Media``.

Owns: reading a source (str, path, bytes, URL, PIL image, interleaved list) into an
Item, sniffing its type, probing media facts from the data itself (``probe``: pages,
pixels, measured durations), telling media from text for the wrappers (``detect``:
declared types, a file's bytes read as text, content hashes) and estimating tokens
(``tokens``). Knows nothing of splitting, the network or stores.
"""

"""Files to stored pieces: walking folders, loading, indexing, getting a piece back.

``loading`` walks a folder and loads each file into pieces within the limits (through
``gemb2.segment``); ``pieces`` carries a piece's metadata and rebuilds a stored piece
from its source; ``indexer`` embeds the pieces not yet stored and writes them, so a
re-run resumes. Knows nothing of the command line or frameworks.
"""

"""Files to stored pieces: walking folders, loading, indexing, getting a piece back.

``loading`` walks a folder and loads each file into pieces within the limits (through
``gemb2.segment``); ``pieces`` is a piece's metadata schema and stored text, the token
budget for text a framework adds, and rebuilds a stored piece (or the PDF page a record
names) from its source; ``indexer`` embeds the pieces not yet stored and writes them, so
a re-run resumes. Knows nothing of the command line or frameworks (every wrapper's
loader calls it).
"""

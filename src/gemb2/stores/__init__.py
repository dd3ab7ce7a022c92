"""Where vectors are kept and searched: Chroma and the Matryoshka index.

``chroma`` is the ChromaDB embedding function (registered with Chroma so a fresh
process rebuilds it from the collection's config, without the key); ``matryoshka``
searches short prefixes of the vectors and re-ranks with the full ones; ``limits`` holds
``ChromaWriteLimits`` (Chroma Cloud's quotas on a server) and ``writer`` the one
``ChromaWriter`` every write of records goes through. Built on the engine; knows
nothing of the CLI or frameworks.
"""

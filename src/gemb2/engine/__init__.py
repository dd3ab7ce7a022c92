"""The Embedder: items in, vectors out, in input order, one vector per item.

Owns: settings (every setting's default, bounds, environment variable and doc live in
``settings.EmbedSettings``), planning calls (at most the transport's batch size and
the byte budgets), concurrency, rate limiting, retries, the vector cache, decoding and
checking answers, normalisation, usage and cost. Talks to the network only through a
``gemb2.transport.Transport``; knows nothing of Chroma, files on disk or frameworks.

``embedder`` holds the ``Embedder`` and its two thin drivers (threads, asyncio);
``planning`` what a run shares whichever driver sends (``PreparedItem``, cache hits,
identical items sent once, cutting calls, landing answers, the run's failure);
``calls`` the one step logic of a batch call (rate limiter turn, send, count, retry or
give up, check the answer); ``budget`` the in-flight byte budget; ``ratelimit`` the
in-process limiter, ``limiter_backends`` which limiter an Embedder gets (the ``limiter``
setting) and ``shared_limiter`` the one kept in a SQLite file or Redis, shared by every
process naming one quota.
``settings_schema`` is what the wrappers derive their fields from (it names frameworks only
in its table of the names each one renames).
"""

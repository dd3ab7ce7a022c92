"""Batch Mode: half-price asynchronous jobs that survive the process that sent them.

Owns: planning and submitting jobs (inline or through an uploaded file), the SQLite
job store that remembers every item sent, waiting, collecting results in input order
and falling back to online calls for what a job did not embed. Built on the engine;
knows nothing of Chroma or the command line.

``embedder`` holds ``BatchEmbedder`` (submit, wait, collect), ``entries`` its per-item
helpers (request lines, answers, online fallback), ``store`` the ``JobStore``, and
``records`` the data and errors they hand back. This ``__init__`` imports nothing, so
importing one of them does not pull in the others.
"""

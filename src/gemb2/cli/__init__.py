"""The ``gemb2`` command: one module per concern, arguments to calls of the core.

``main`` parses the command line and runs ``index``, ``search``, ``embed`` and
``migrate``; ``batch`` adds Batch Mode (``index --batch``, ``gemb2 jobs``); ``store``
opens the Chroma store a command writes to; ``doctor`` measures a service's facts
(through ``probes``) and writes them as a profile. Every expected failure ends as one line
and an exit code, never a traceback.
"""

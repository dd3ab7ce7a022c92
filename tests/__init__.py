"""gemb2's tests.

A package, so pytest puts the repository root on ``sys.path`` rather than ``tests/``: from
``tests/``, the folder ``tests/langchain/`` would import as a namespace package named
``langchain``, which langchain-core 0.3 imports to read ``langchain.debug`` (AttributeError).
"""

"""Every fact about a model, in one place: the catalog, its limits, its tasks, its prices.

Owns: model ids and aliases, modalities and dimensions (``catalog``), the per-item
limits and the check that an item is within them (``limits``), task conditioning
(the gemini-embedding-2 prefix or the older models' ``taskType``, ``tasks``), the
service facts sources disagree on as one loadable file (``profile``) and list prices of
a planned request (``pricing``).
Knows nothing of the network, batching, stores or frameworks; everything else asks
here instead of keeping its own copy of a fact.
"""

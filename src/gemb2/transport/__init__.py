"""The wire: the one place that talks to google-genai (or stands in for it).

``base`` holds the ``Transport`` protocol and the call/answer records; ``genai`` the
google-genai implementation (client construction, the Developer API's fast path,
Vertex AI's public call); ``wire`` the request and answer bodies. A transport sends
one call and returns its answer: it knows nothing of limits, batching or retries.
"""

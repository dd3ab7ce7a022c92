"""One worker process of the shared-limiter tests: builds its Embedder (and SDK client),
says it is ready, waits for the start signal, embeds its texts and prints what it did as
one JSON line. ``throttle`` instead reports a 429 through the limiter and exits.

    python limiter_worker.py '{"base_url": ..., "limiter": ..., "rpm": 300, "n": 10, ...}'
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from gemb2 import Embedder, EmbedSettings
from gemb2.engine.limiter_backends import limiter_for
from gemb2.transport.genai import genai_client


def main() -> int:
    job = json.loads(sys.argv[1])
    settings = EmbedSettings(
        base_url=job["base_url"],
        dimensions=128,
        batch_size=1,
        max_concurrency=job.get("concurrency", 2),
        requests_per_minute=job.get("rpm"),
        tokens_per_minute=job.get("tpm"),
        limiter=job["limiter"],
    )
    if "throttle" in job:  # a 429 seen here: every sharer pauses until then
        limiter = limiter_for(settings)
        at = time.time()
        limiter.throttled(job["throttle"])
        print(json.dumps({"until": at + job["throttle"]}))
        return 0
    emb = Embedder(settings)
    genai_client(emb.transport)  # built before the start, as a long run's would be
    Path(job["ready"]).touch()
    go = Path(job["go"])
    deadline = time.monotonic() + 300
    while not go.exists():
        if time.monotonic() > deadline:
            return 3
        time.sleep(0.005)
    texts = [f"{job['tag']} text number {i}" for i in range(job["n"])]
    vectors = emb.embed(texts)
    print(json.dumps({"vectors": len(vectors), "requests": emb.usage.requests}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

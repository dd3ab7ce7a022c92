"""What a job sent and what it cost, per call and in total."""

from __future__ import annotations

import threading
from collections import Counter, deque
from dataclasses import dataclass, field

from gemb2.model.catalog import BATCH_DISCOUNT, PRICE_PER_MILLION_TOKENS


@dataclass(frozen=True)
class CallUsage:
    """One batch call: items by modality and tokens (estimated, and billed when reported)."""

    items: int
    modalities: dict[str, int]
    tokens: dict[str, int]
    billed_tokens: int | None = None
    attempts: int = 1


@dataclass
class Usage:
    """Totals of an Embedder. ``requests`` counts every attempt sent, whatever came of it
    (answered, malformed, failed, retried or given up); ``retries`` the attempts after a
    batch's first; items, modalities and tokens only what was embedded."""

    requests: int = 0
    items: int = 0
    retries: int = 0
    cached: int = 0
    # items answered with the vector of an identical item sent in the same call
    deduplicated: int = 0
    modalities: Counter[str] = field(default_factory=Counter)
    tokens: Counter[str] = field(default_factory=Counter)
    calls: deque[CallUsage] = field(default_factory=lambda: deque(maxlen=1000))
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def record_attempt(self, *, retry: bool) -> None:
        """One request sent (counted as it goes, so a call that fails for good counts)."""
        with self._lock:
            self.requests += 1
            self.retries += int(retry)

    def record(self, call: CallUsage) -> None:
        """A batch embedded (its attempts were counted by ``record_attempt``)."""
        with self._lock:
            self.items += call.items
            self.modalities.update(call.modalities)
            self.tokens.update(call.tokens)
            self.calls.append(call)

    def record_cached(self, n: int) -> None:
        with self._lock:
            self.cached += n

    def record_deduplicated(self, n: int) -> None:
        with self._lock:
            self.deduplicated += n

    def cost(self, *, batch_mode: bool = False) -> float:
        """Estimated USD at list prices."""
        return sum(self.cost_by_modality(batch_mode=batch_mode).values())

    def snapshot(self) -> Usage:
        """A copy of the counters now, to measure one run with ``since``."""
        with self._lock:
            return Usage(
                requests=self.requests,
                items=self.items,
                retries=self.retries,
                cached=self.cached,
                deduplicated=self.deduplicated,
                modalities=Counter(self.modalities),
                tokens=Counter(self.tokens),
            )

    def since(self, before: Usage) -> Usage:
        """What was used between ``before`` (a snapshot) and now."""
        now = self.snapshot()
        return Usage(
            requests=now.requests - before.requests,
            items=now.items - before.items,
            retries=now.retries - before.retries,
            cached=now.cached - before.cached,
            deduplicated=now.deduplicated - before.deduplicated,
            modalities=now.modalities - before.modalities,
            tokens=now.tokens - before.tokens,
        )

    def as_dict(self) -> dict[str, object]:
        return {
            "requests": self.requests,
            "items": self.items,
            "retries": self.retries,
            "cached": self.cached,
            "deduplicated": self.deduplicated,
            "modalities": dict(self.modalities),
            "tokens": dict(self.tokens),
            "estimated_cost_usd": self.cost(),
        }

    def cost_by_modality(self, *, batch_mode: bool = False) -> dict[str, float]:
        factor = BATCH_DISCOUNT if batch_mode else 1.0
        return {
            m: PRICE_PER_MILLION_TOKENS.get(m, 0.0) * t / 1e6 * factor
            for m, t in sorted(self.tokens.items())
        }

    def cost_line(self) -> str:
        parts = [f"{m} ${c:.4f}" for m, c in self.cost_by_modality().items()]
        return f"est. ${self.cost():.4f}" + (f" ({', '.join(parts)})" if parts else "")

    def summary(self) -> str:
        mods = ", ".join(f"{m}: {n}" for m, n in sorted(self.modalities.items())) or "none"
        return (
            f"{self.items} items embedded ({mods}), {self.cached} from cache, "
            f"{self.deduplicated} identical to another, "
            f"{self.requests} requests, {self.retries} retries, {self.cost_line()}"
        )

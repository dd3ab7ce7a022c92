"""What Batch Mode hands back and keeps: job records, results, failures, cost estimates.

Plain data and the two errors a caller catches (``JobPendingError``, ``JobFailedError``),
apart from the SQLite store and the submitting engine, so the CLI and the store can
use them without pulling in either; also the job states and size limits they are
judged by.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gemb2.errors import Gemb2Error
from gemb2.model.catalog import BATCH_DISCOUNT, PRICE_PER_MILLION_TOKENS

ENDED_STATES = frozenset(
    {"JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED", "JOB_STATE_CANCELLED", "JOB_STATE_EXPIRED"}
)
SUCCEEDED = "JOB_STATE_SUCCEEDED"
# per-item codes meaning "this input is not accepted here": google.rpc INVALID_ARGUMENT,
# FAILED_PRECONDITION, UNIMPLEMENTED and their HTTP twins
NOT_ACCEPTED_CODES = frozenset({3, 9, 12, 400, 501})
INLINE_MAX_BYTES = 19_000_000  # the service takes inline batch requests up to about 20 MB
FILE_MAX_BYTES = 2_000_000_000  # and input files up to 2 GB


class JobPendingError(Gemb2Error):
    """The job has not finished yet; collect it later (or wait for it)."""

    def __init__(self, name: str, state: str) -> None:
        self.name = name
        self.state = state
        super().__init__(
            f"batch job {name} is {short_state(state)}; collect it once it has SUCCEEDED "
            "(Batch Mode may take up to 24 h)"
        )


class JobFailedError(Gemb2Error):
    """The whole job ended without results (FAILED, CANCELLED or EXPIRED): resubmit it."""

    def __init__(self, name: str, state: str, message: str | None = None) -> None:
        self.name = name
        self.state = state
        why = f": {message}" if message else ""
        super().__init__(
            f"batch job {name} ended {short_state(state)} without results{why}; "
            "submit the items again"
        )


def short_state(state: str) -> str:
    return state.removeprefix("JOB_STATE_")


def money(usd: float) -> str:
    """Dollars with enough digits that a small job does not read as free."""
    return f"${usd:.4f}" if usd >= 0.01 or usd == 0 else f"${usd:.6f}"


@dataclass
class JobRecord:
    """One submitted job as the store keeps it."""

    name: str
    model: str
    dimensions: int
    normalize: bool
    mode: str  # "inline" or "file"
    count: int
    state: str
    created: float
    updated: float
    display_name: str = ""
    input_file: str | None = None
    collected: float | None = None
    stored: int = 0
    failed: int = 0
    cost_online: float = 0.0
    cost_batch: float = 0.0
    context: dict[str, Any] = field(default_factory=dict)

    @property
    def done(self) -> bool:
        return self.state in ENDED_STATES

    @property
    def short_state(self) -> str:
        return short_state(self.state)


@dataclass(frozen=True)
class ItemFailure:
    """An item the job could not embed, with the service's reason."""

    key: str
    message: str
    code: int | None = None
    payload: Any = None


@dataclass
class BatchResult:
    """What a collected job gave: vectors by key (in submission order) and failures."""

    job: JobRecord
    keys: list[str] = field(default_factory=list)
    vectors: list[list[float]] = field(default_factory=list)
    payloads: list[Any] = field(default_factory=list)
    failures: list[ItemFailure] = field(default_factory=list)
    fallback: list[ItemFailure] = field(default_factory=list)  # embedded online instead
    billed_tokens: int | None = None

    def vector_of(self, key: str) -> list[float]:
        return self.vectors[self.keys.index(key)]


@dataclass(frozen=True)
class CostEstimate:
    """Estimated input tokens by modality and what they cost online and in Batch Mode."""

    tokens: Mapping[str, int]
    items: int = 0

    def cost(self, *, batch_mode: bool) -> float:
        factor = BATCH_DISCOUNT if batch_mode else 1.0
        return sum(
            PRICE_PER_MILLION_TOKENS.get(m, 0.0) * t / 1e6 * factor for m, t in self.tokens.items()
        )

    @property
    def online(self) -> float:
        return self.cost(batch_mode=False)

    @property
    def batch(self) -> float:
        return self.cost(batch_mode=True)

    def table(self) -> list[str]:
        """Rows for people: per modality and total, online next to Batch Mode."""
        rows = [f"  {'modality':<9}{'tokens':>12}{'online':>13}{'Batch Mode':>13}"]
        for m, t in sorted(self.tokens.items()):
            online = PRICE_PER_MILLION_TOKENS.get(m, 0.0) * t / 1e6
            rows.append(f"  {m:<9}{t:>12,}{money(online):>13}{money(online * BATCH_DISCOUNT):>13}")
        total = sum(self.tokens.values())
        rows.append(f"  {'total':<9}{total:>12,}{money(self.online):>13}{money(self.batch):>13}")
        saved = self.online - self.batch
        share = saved / self.online * 100 if self.online else (1 - BATCH_DISCOUNT) * 100
        rows.append(f"  Batch Mode saves {money(saved)} ({share:.0f}%) at list prices")
        return rows


@dataclass
class Submission:
    """What ``submit`` did: the jobs it created and what it embedded online right away."""

    jobs: list[JobRecord]
    estimate: CostEstimate
    online_keys: list[str] = field(default_factory=list)
    online_estimate: CostEstimate = field(default_factory=lambda: CostEstimate({}))
    cached: int = 0
    refused_media: str | None = None  # why Batch Mode refused a job for its media, if it did

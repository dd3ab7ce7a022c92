"""The emulator's knobs, validated once so a typo fails at configure time, not mid-test."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

FaultKind = Literal[
    "429", "500", "503", "slow", "drop", "truncated", "nan", "wrong_count", "wrong_dim"
]
BatchFinalState = Literal["SUCCEEDED", "FAILED", "CANCELLED", "EXPIRED"]
# answered 200 with a body a client must refuse (online embedding routes only): cut in
# half, a bare NaN for the first value, one vector too few, the first vector one short
ANSWER_FAULTS: tuple[str, ...] = ("truncated", "nan", "wrong_count", "wrong_dim")
FAULT_KINDS: tuple[str, ...] = ("429", "500", "503", "slow", "drop", *ANSWER_FAULTS)


class EmulatorConfig(BaseModel):
    """Latency, rate limit and fault injection of the emulated API.

    Every field can be changed while the server runs with ``Emulator.configure``.
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    # together the service time of a call: the emulator's own work counts in it, not on top
    latency_per_request: float = Field(0.0, ge=0, description="seconds each call takes")
    latency_per_item: float = Field(0.0, ge=0, description="seconds more per embedded item")
    rate_limit_rpm: float | None = Field(
        None, gt=0, description="requests per sliding 60 s window; over it answer 429"
    )
    rate_limit_window: float = Field(
        60.0,
        gt=0,
        description="seconds of the rate limit's sliding window; it admits "
        "rate_limit_rpm x window / 60 requests (a short window: a quota that binds at once)",
    )
    retry_info: bool = Field(
        True,
        description="429s name their retry delay (RetryInfo.retryDelay and 'Please retry "
        "in'); False: a bare 429 with no usable delay",
    )
    fault_rate: float = Field(0.0, ge=0, le=1, description="probability a request faults")
    faults: tuple[FaultKind, ...] = Field(
        ("429", "500", "503"), description="fault kinds drawn uniformly when a request faults"
    )
    fail_first: int | None = Field(
        None,
        ge=0,
        description="only the first N requests after configure() may fault, then all succeed",
    )
    retry_delay: float = Field(1.0, ge=0, description="retryDelay of injected 429s, seconds")
    reject_api_key: bool = Field(
        False,
        description="answer every embedding call 403 PERMISSION_DENIED, echoing the "
        "request's API key in the message and details (as Google's 'API key not valid' does)",
    )
    echo_api_key: bool = Field(
        False, description="every error answer's message echoes the request's key (a proxy)"
    )
    slow_seconds: float = Field(5.0, ge=0, description="sleep of a 'slow' fault, seconds")
    seed: int = Field(0, description="seed of the fault draws (deterministic per request order)")
    max_batch: int = Field(100, ge=1, description="requests allowed in one batch call")
    dimensions_default: int = Field(
        3072, ge=1, le=3072, description="dimension when outputDimensionality is absent"
    )
    # Batch Mode (models/{m}:asyncBatchEmbedContent, batches/{id}); read when a job is created
    batch_delay: float = Field(
        1.0, ge=0, description="seconds a batch job takes: PENDING, RUNNING, then done"
    )
    batch_fail_indices: tuple[int, ...] = Field(
        (), description="0-based positions in a batch job whose items fail"
    )
    batch_fail_keys: tuple[str, ...] = Field(
        (), description="keys of JSONL lines (file jobs) whose items fail"
    )
    batch_fail_every: int | None = Field(
        None, ge=1, description="every Nth item of a batch job fails"
    )
    batch_accepts_media: bool = Field(
        True, description="False: items holding media fail in a batch job (text only)"
    )
    batch_media_refusal: Literal["item", "job"] = Field(
        "item",
        description="with batch_accepts_media off: fail each media item, or refuse the whole job",
    )
    batch_hold: Literal["PENDING", "RUNNING"] | None = Field(
        None, description="while set, unfinished batch jobs stay in this state"
    )
    batch_final_state: BatchFinalState = Field(
        "SUCCEEDED", description="how every batch job ends (FAILED/EXPIRED: no output)"
    )

    @field_validator("batch_fail_indices", "batch_fail_keys", mode="before")
    @classmethod
    def _split_list(cls, value: object) -> object:
        """Accept "1,5,9" from a command line as well as a sequence."""
        if isinstance(value, str):
            return tuple(v.strip() for v in value.split(",") if v.strip())
        return value

    @field_validator("faults", mode="before")
    @classmethod
    def _split_faults(cls, value: object) -> object:
        """Accept "429,503" from a command line as well as a sequence."""
        if isinstance(value, str):
            return tuple(v.strip() for v in value.split(",") if v.strip())
        if isinstance(value, list):
            return tuple(str(v) for v in value)
        return value

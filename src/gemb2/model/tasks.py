"""Task conditioning: a text prefix for gemini-embedding-2, ``taskType`` for gemini-embedding-001.

gemini-embedding-2 reportedly ignores ``taskType``; its authors condition text by a
prefix instead. Media inputs are sent without a prefix.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from gemb2.inputs.media import Item
from gemb2.model.catalog import ModelSpec

Task = Literal[
    "retrieval",
    "question_answering",
    "fact_checking",
    "code_retrieval",
    "classification",
    "clustering",
    "semantic_similarity",
    "raw",
]
Role = Literal["query", "document"]

TASKS: tuple[str, ...] = Task.__args__  # type: ignore[attr-defined]

# task -> (prefix name, symmetric?, taskType for the query side)
_TABLE: dict[str, tuple[str, bool, str]] = {
    "retrieval": ("search result", False, "RETRIEVAL_QUERY"),
    "question_answering": ("question answering", False, "QUESTION_ANSWERING"),
    "fact_checking": ("fact checking", False, "FACT_VERIFICATION"),
    "code_retrieval": ("code retrieval", False, "CODE_RETRIEVAL_QUERY"),
    "classification": ("classification", True, "CLASSIFICATION"),
    "clustering": ("clustering", True, "CLUSTERING"),
    "semantic_similarity": ("sentence similarity", True, "SEMANTIC_SIMILARITY"),
}


def _prefix_tokens() -> int:
    from gemb2.inputs.tokens import estimate_tokens

    longest = max(estimate_tokens(f"task: {name} | query: ") for name, _, _ in _TABLE.values())
    return max(longest, estimate_tokens("title: none | text: ")) + 2  # +2: rounding at the seam


# Tokens the task prefix adds to an untitled text item: text cut to fit the model's limit
# must leave this much room, or the conditioned text the service sees goes over it.
PREFIX_TOKENS: int = _prefix_tokens()


@dataclass(frozen=True)
class Conditioning:
    """What to send for one item: replacement text (prefix) and/or request fields."""

    text: str | None = None
    task_type: str | None = None
    title: str | None = None


def condition(item: Item, spec: ModelSpec, task: str, role: Role) -> Conditioning:
    if task == "raw" or spec.conditioning == "none":
        return Conditioning()
    name, symmetric, query_type = _TABLE[task]
    if spec.conditioning == "task_type":
        if role == "query" or symmetric:
            return Conditioning(task_type=query_type)
        return Conditioning(task_type="RETRIEVAL_DOCUMENT", title=item.title)
    if not item.is_text_only:
        return Conditioning()
    if role == "query" or symmetric:
        return Conditioning(text=f"task: {name} | query: {item.text}")
    return Conditioning(text=f"title: {item.title or 'none'} | text: {item.text}")

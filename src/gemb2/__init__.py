"""gemb2: Google's Gemini Embedding 2 as a first-class multimodal embedding model."""

from .batch import BatchEmbedder, BatchResult, JobStore
from .cache import VectorCache
from .embedder import Embedder, embed
from .errors import (
    APIError,
    ConfigError,
    Gemb2Error,
    InputError,
    LimitExceededError,
    MediaReadError,
    ModelMismatchError,
    RateLimitError,
    ResponseMismatchError,
    RetryExhaustedError,
    ServerError,
    TransportError,
    UnsupportedMediaError,
)
from .media import Item, Media
from .models import DEFAULT_MODEL, MODELS, Limits, ModelSpec, get_model
from .settings import EmbedSettings
from .tasks import TASKS, Role, Task
from .usage import Usage
from .vectors import normalize, truncate

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_MODEL",
    "MODELS",
    "TASKS",
    "APIError",
    "BatchEmbedder",
    "BatchResult",
    "ConfigError",
    "EmbedSettings",
    "Embedder",
    "Gemb2Error",
    "InputError",
    "Item",
    "JobStore",
    "LimitExceededError",
    "Limits",
    "Media",
    "MediaReadError",
    "ModelMismatchError",
    "ModelSpec",
    "RateLimitError",
    "ResponseMismatchError",
    "RetryExhaustedError",
    "Role",
    "ServerError",
    "Task",
    "TransportError",
    "UnsupportedMediaError",
    "Usage",
    "VectorCache",
    "__version__",
    "embed",
    "get_model",
    "normalize",
    "truncate",
]

"""gemb2: Google's Gemini Embedding 2 as a first-class multimodal embedding model."""

from gemb2.batch.embedder import BatchEmbedder
from gemb2.batch.records import BatchResult
from gemb2.batch.store import JobStore
from gemb2.engine.cache import VectorCache
from gemb2.engine.embedder import Embedder, embed
from gemb2.engine.planning import PreparedItem
from gemb2.engine.settings import EmbedSettings
from gemb2.engine.usage import Usage
from gemb2.engine.vectors import normalize, truncate
from gemb2.errors import (
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
from gemb2.inputs.media import Item, Media
from gemb2.model.catalog import DEFAULT_MODEL, MODELS, Limits, ModelSpec, get_model
from gemb2.model.profile import Profile, load_profile
from gemb2.model.tasks import TASKS, Role, Task

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
    "PreparedItem",
    "Profile",
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
    "load_profile",
    "normalize",
    "truncate",
]

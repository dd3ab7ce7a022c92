"""Every ``__init__`` argument of every component survives ``to_dict``/``from_dict`` and
``Pipeline.dumps``/``Pipeline.loads`` (in a fresh process), and no secret is serialised.

The parameters are enumerated with ``inspect.signature``, so a parameter added later is
covered without touching this file (or fails here until it gets a non-default value below).
"""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from haystack import Pipeline
from haystack.utils import Secret
from haystack_integrations.components.embedders.gemb2 import (
    GeminiDocumentEmbedder,
    GeminiMediaQueryEmbedder,
    GeminiTextEmbedder,
)
from haystack_integrations.components.retrievers.gemb2 import GeminiMatryoshkaRetriever

SECRET = "AIzaSy-ROUND-TRIP-SECRET-0123456789"
KEY_VAR = "GEMB2_ROUND_TRIP_KEY"
COMPONENTS = [
    GeminiTextEmbedder,
    GeminiMediaQueryEmbedder,
    GeminiDocumentEmbedder,
    GeminiMatryoshkaRetriever,
]

# Values for parameters whose default cannot be bent mechanically (validated settings, or a
# default of None that says nothing of the type). Every value differs from the default.
SPECIAL: dict[str, Any] = {
    "api_key": Secret.from_env_var([KEY_VAR, "GEMINI_API_KEY"], strict=True),
    "api": "vertex",
    "vertex_ai_project": "my-project",
    "vertex_ai_location": "europe-west4",
    "model": "gemini-embedding-001",
    "dimensions": 1536,
    "task": "question_answering",
    "api_base_url": "http://127.0.0.1:9/proxy",
    "timeout": 12.5,
    "max_retries": 2,
    "settings": {"max_concurrency": 2, "requests_per_minute": 100.0},
    "meta_fields_to_embed": ["title", "year"],
    "title_meta_field": "title",
    "file_path_meta_field": "path",
    "root_path": "/data/media",
    "batch_size": 20,
    "small_dims": 256,
    "oversample": 3,
    "top_k": 4,
}


def non_default(name: str, param: inspect.Parameter) -> Any:
    """A value for ``param`` that is valid and not its default."""
    if name in SPECIAL:
        return SPECIAL[name]
    default = param.default
    if isinstance(default, bool):
        return not default
    if isinstance(default, str):
        return f"{default}<{name}>"  # prefix, suffix, separator: any string is valid
    if default is inspect.Parameter.empty and param.annotation in ("str", str):
        return f"/tmp/{name}"  # required paths and names of the retriever
    raise AssertionError(
        f"no non-default value for {name}={default!r}: add one to SPECIAL in this test"
    )


def init_kwargs(cls: type) -> dict[str, Any]:
    params = inspect.signature(cls.__init__).parameters
    # `embedder` (an engine object) is left out of to_dict by design: see
    # test_a_given_embedder_is_used_and_left_out_of_to_dict
    kwargs = {n: non_default(n, p) for n, p in params.items() if n not in ("self", "embedder")}
    for name, value in kwargs.items():
        assert value != params[name].default, name
    return kwargs


def init_state(component: Any, names: list[str]) -> dict[str, Any]:
    """The init parameters as the component holds them (Haystack's attribute convention)."""
    return {n: getattr(component, n) for n in names}


@pytest.mark.parametrize("cls", COMPONENTS, ids=lambda c: c.__name__)
def test_every_init_argument_round_trips(cls: type, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_VAR, SECRET)
    kwargs = init_kwargs(cls)
    component = cls(**kwargs)
    assert init_state(component, list(kwargs)) == kwargs

    data = component.to_dict()
    assert set(data["init_parameters"]) == set(kwargs)  # nothing dropped, nothing extra
    for name, value in kwargs.items():
        expected = value.to_dict() if isinstance(value, Secret) else value
        assert data["init_parameters"][name] == expected, name
    text = json.dumps(data)
    assert SECRET not in text
    assert KEY_VAR in text  # the name of the variable, not its value

    again = cls.from_dict(json.loads(text))
    assert type(again) is cls
    assert init_state(again, list(kwargs)) == kwargs
    assert again.to_dict() == data
    assert again.api_key.resolve_value() == SECRET  # read from the variable it names


CHILD = textwrap.dedent(
    """
    import inspect, json, sys
    from haystack import Pipeline
    from haystack.utils import Secret
    pipe = Pipeline.loads(open(sys.argv[1]).read())
    out = {}
    for name, c in pipe.walk():
        params = [
            p for p in inspect.signature(type(c).__init__).parameters
            if p not in ("self", "embedder")
        ]
        state = {p: getattr(c, p) for p in params}
        out[name] = {p: v.to_dict() if isinstance(v, Secret) else v for p, v in state.items()}
    print(json.dumps(out))
    """
)


def test_pipeline_dumps_loads_in_a_fresh_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The loaded components hold every value the saved ones were built with."""
    monkeypatch.setenv(KEY_VAR, SECRET)
    pipe = Pipeline()
    expected: dict[str, dict[str, Any]] = {}
    for cls in COMPONENTS:
        kwargs = init_kwargs(cls)
        pipe.add_component(cls.__name__, cls(**kwargs))
        expected[cls.__name__] = {
            n: v.to_dict() if isinstance(v, Secret) else v for n, v in kwargs.items()
        }
    yaml = pipe.dumps()
    assert SECRET not in yaml
    (tmp_path / "pipeline.yaml").write_text(yaml)
    env = {k: v for k, v in os.environ.items() if k != "HAYSTACK_DESERIALIZATION_ALLOWLIST"}
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(tmp_path / "pipeline.yaml")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert SECRET not in proc.stdout + proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == expected

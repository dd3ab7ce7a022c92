"""The public API is what the ``__all__`` lists name, and nothing in it hands out a private
type: a user who follows a return annotation never lands on an underscored name."""

from __future__ import annotations

import importlib
import inspect
import re

import pytest

PUBLIC = (
    "gemb2",
    "gemb2.testing",
    "gemb2.segment",
    "langchain_gemb2",
    "llamaindex_gemb2",
    "haystack_gemb2",
)
_PRIVATE_NAME = re.compile(r"(?<![\w.])_[A-Za-z]\w*")


def _annotations(obj: object) -> list[tuple[str, str]]:
    """(where, annotation text) for a function's return, or each public method's and
    property's of a class."""
    found: list[tuple[str, str]] = []
    members = (
        [(n, m) for n, m in vars(obj).items() if not n.startswith("_") or n == "__init__"]
        if inspect.isclass(obj)
        else [("", obj)]
    )
    for name, member in members:
        fn = member.fget if isinstance(member, property) else member
        fn = getattr(fn, "__func__", fn)  # classmethod / staticmethod
        if not callable(fn):
            continue
        try:
            sig = inspect.signature(fn)
        except (TypeError, ValueError):
            continue
        ann = sig.return_annotation
        if ann is not inspect.Signature.empty:
            found.append((name, ann if isinstance(ann, str) else repr(ann)))
    return found


@pytest.mark.parametrize("module_name", PUBLIC)
def test_every_listed_name_exists_and_is_public(module_name: str) -> None:
    module = importlib.import_module(module_name)
    listed = module.__all__
    assert listed == sorted(set(listed), key=listed.index), "no name is listed twice"
    for name in listed:
        assert not (name.startswith("_") and name != "__version__"), f"{name} is private"
        assert hasattr(module, name), f"{module_name}.__all__ lists {name}, which is missing"


@pytest.mark.parametrize("module_name", PUBLIC)
def test_nothing_public_returns_a_private_type(module_name: str) -> None:
    module = importlib.import_module(module_name)
    bad = [
        f"{module_name}.{name}{'.' + where if where else ''} -> {text}"
        for name in module.__all__
        for where, text in _annotations(getattr(module, name))
        if _PRIVATE_NAME.search(text)
    ]
    assert bad == []


def test_the_check_sees_a_private_return_type() -> None:
    class _Hidden: ...

    class Open:
        def leak(self) -> _Hidden:
            return _Hidden()

    assert [text for _, text in _annotations(Open)] == ["_Hidden"]
    assert _PRIVATE_NAME.search("list[_Hidden]")
    assert not _PRIVATE_NAME.search("gemb2.PreparedItem | None")

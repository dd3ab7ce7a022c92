"""``GeminiMediaQueryEmbedder``: an image, audio clip, video or PDF (with optional text) as
one query vector, in the same space as text and media documents."""

from pathlib import Path
from typing import TYPE_CHECKING, Any

from haystack import component
from haystack.dataclasses import ByteStream, FileContent, ImageContent

from gemb2 import Item

from ._base import INTEGRATION_MODULE, GeminiComponent
from ._sources import source_media

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from ._base import GeminiParams


@component
class GeminiMediaQueryEmbedder(GeminiComponent):
    """Embeds an image, audio clip, video or PDF (optionally with text) as a query, to find
    the text and media documents closest to it. Connects to a retriever like a text embedder.

    ```python
    embedder = GeminiMediaQueryEmbedder(dimensions=768)
    embedder.run(source="photos/cat.png")              # a path, URL, ByteStream or ImageContent
    embedder.run(source="cat.png", text="in the snow")  # interleaved: one vector for both
    ```
    """

    __module__ = INTEGRATION_MODULE

    def __init__(self, *, root_path: str | None = None, **params: "Unpack[GeminiParams]") -> None:
        """Create the component; nothing is sent until `run`.

        :param root_path: Relative paths are read under this folder, and paths that resolve
            outside it are refused. Set it when paths come from untrusted input.
        %s
        """
        self.root_path = root_path
        self._init_shared(**params)

    def _item(self, source: Any, text: str | None) -> Item:
        media = source_media(source, root_path=self.root_path)
        return Item(parts=(text, media) if text else (media,))

    @component.output_types(embedding=list[float], meta=dict[str, Any])
    def run(
        self,
        source: str | Path | ByteStream | ImageContent | FileContent,
        text: str | None = None,
    ) -> dict[str, Any]:
        """Embed one media query.

        :param source: A file path, an http(s) or gs:// URL, a ByteStream, an ImageContent or
            a FileContent holding an image, audio, video or PDF.
        :param text: Optional text sent with the media as one interleaved input.
        :returns: `embedding` (list of floats) and `meta` (model, dimensions, usage of this run).
        """
        item = self._item(source, text)
        before = self.embedder.usage.snapshot()
        vector = self.embedder.embed([item], role="query")[0]
        return {"embedding": vector, "meta": self._meta(before)}

    @component.output_types(embedding=list[float], meta=dict[str, Any])
    async def run_async(
        self,
        source: str | Path | ByteStream | ImageContent | FileContent,
        text: str | None = None,
    ) -> dict[str, Any]:
        """Async twin of `run`, on the SDK's async client."""
        item = self._item(source, text)
        before = self.embedder.usage.snapshot()
        vector = (await self.embedder.aembed([item], role="query"))[0]
        return {"embedding": vector, "meta": self._meta(before)}

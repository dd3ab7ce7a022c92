"""``GeminiTextEmbedder``: a query string to one vector, to search text and media alike."""

from typing import TYPE_CHECKING, Any

from haystack import component

from gemb2 import Item

from ._base import INTEGRATION_MODULE, GeminiComponent

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from ._base import GeminiParams


@component
class GeminiTextEmbedder(GeminiComponent):
    """Embeds a query string with Gemini Embedding 2, to search text and media alike.

    ```python
    from haystack_integrations.components.embedders.gemb2 import GeminiTextEmbedder

    embedder = GeminiTextEmbedder(dimensions=768)
    embedder.run("a red circle")  # {"embedding": [...768 floats], "meta": {...}}
    ```
    """

    __module__ = INTEGRATION_MODULE

    def __init__(
        self, *, prefix: str = "", suffix: str = "", **params: "Unpack[GeminiParams]"
    ) -> None:
        """Create the component; nothing is sent until `run`.

        :param prefix: Text added before the query (Gemini's own task prefix is added anyway).
        :param suffix: Text added after the query.
        %s
        """
        self.prefix = prefix
        self.suffix = suffix
        self._init_shared(**params)

    def _item(self, text: str) -> Item:
        if not isinstance(text, str):
            raise TypeError(
                "GeminiTextEmbedder expects a string as input. To embed Documents use "
                "GeminiDocumentEmbedder; to embed an image or other media as a query use "
                "GeminiMediaQueryEmbedder."
            )
        return Item(parts=(self.prefix + text + self.suffix,))

    @component.output_types(embedding=list[float], meta=dict[str, Any])
    def run(self, text: str) -> dict[str, Any]:
        """Embed one query.

        :param text: The query.
        :returns: `embedding` (list of floats) and `meta` (model, dimensions, usage of this run).
        """
        item = self._item(text)
        before = self.embedder.usage.snapshot()
        vector = self.embedder.embed([item], role="query")[0]
        return {"embedding": vector, "meta": self._meta(before)}

    @component.output_types(embedding=list[float], meta=dict[str, Any])
    async def run_async(self, text: str) -> dict[str, Any]:
        """Embed one query on the SDK's async client; same inputs and outputs as `run`."""
        item = self._item(text)
        before = self.embedder.usage.snapshot()
        vector = (await self.embedder.aembed([item], role="query"))[0]
        return {"embedding": vector, "meta": self._meta(before)}

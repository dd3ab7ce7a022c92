"""Test doubles for code that embeds: run a pipeline with no network and no socket.

``FakeTransport`` runs the bundled emulator's own request handling in process, so each
input gets exactly the vector the emulator gives over HTTP, and its faults (429, 5xx,
dropped connections, bad answers) can be injected. Pass it as
``Embedder(transport=FakeTransport())``, then hand that Embedder to any wrapper with
``embedder=``. Its vectors are deterministic stand-ins, not Gemini's.
"""

from gemb2.testing.fake import FakeTransport

__all__ = ["FakeTransport"]

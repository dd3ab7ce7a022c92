"""A local emulator of the Gemini API's embedding endpoints, for tests and offline use.

Its vectors are deterministic stand-ins with real structure (shared words are
close, media are found by the text they carry, Matryoshka-shaped), not Gemini's. The
service facts it serves (limits, normalisation, what ``taskType`` and prefixes change,
Batch Mode's media, error texts) come from a ``gemb2.model.profile.Profile``.
"""

from gemb2.testing.emulator.config import FAULT_KINDS, EmulatorConfig
from gemb2.testing.emulator.server import Emulator, emulator_unless
from gemb2.testing.emulator.stats import EmulatorStats

__all__ = ["FAULT_KINDS", "Emulator", "EmulatorConfig", "EmulatorStats", "emulator_unless"]

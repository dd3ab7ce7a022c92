"""Fixtures of the reliability tests (helpers live in rel_helpers.py)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from rel_helpers import SLOW_SECONDS

from gemb2.testing.emulator import Emulator


@pytest.fixture
def quiet_emulator(emulator: Emulator) -> Iterator[Emulator]:
    """The shared emulator, faults switched off afterwards whatever the test did. A "slow"
    fault's handler still answers (and counts its items) after the client gave up: wait it
    out, so the next test's counters start clean."""
    yield emulator
    emulator.configure(fault_rate=0.0, latency_per_request=0.0)
    if emulator.stats.faults.get("slow"):
        time.sleep(SLOW_SECONDS + 0.3)
    emulator.reset_stats()

"""End-to-end fixtures: the real `rtd` process against the real emulator on loopback."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from rtd.emulator import DEMO_SCENARIO, Emulator, load_scenario


@pytest.fixture
def demo_emulator() -> Iterator[Emulator]:
    with Emulator(scenario=load_scenario(DEMO_SCENARIO), voice_engine="tones") as emu:
        yield emu

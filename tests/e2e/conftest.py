"""End-to-end fixtures: the real `rtd` process against the real emulator on loopback."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from rtdproc import KEY, Daemon

from rtd.emulator import DEMO_SCENARIO, Emulator, load_scenario


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """A clean environment: no user config found by accident, a known key."""
    e = {k: v for k, v in os.environ.items() if not k.startswith(("RTD_", "OPENAI_"))}
    e["OPENAI_API_KEY"] = KEY
    e["HOME"] = str(tmp_path)
    return e


@pytest.fixture
def run_rtd(env: dict[str, str], tmp_path: Path) -> Iterator:
    started: list[Daemon] = []

    def start(*args: str, extra_env: dict[str, str] | None = None) -> Daemon:
        d = Daemon(list(args), {**env, **(extra_env or {})})
        started.append(d)
        return d

    yield start
    for d in started:
        if d.proc.poll() is None:
            d.proc.send_signal(signal.SIGKILL)
            d.proc.wait()


@pytest.fixture
def demo_emulator() -> Iterator[Emulator]:
    with Emulator(scenario=load_scenario(DEMO_SCENARIO), voice_engine="tones") as emu:
        yield emu

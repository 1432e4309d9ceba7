"""Fixtures for the emulator tests: a real emulator on loopback and a real WebSocket client."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from emulator_helpers import Client

from rtd.emulator import Emulator, Scenario


@pytest.fixture
def make_emulator() -> Iterator[Any]:
    """Build and start emulators (tones voice, loopback, any port); stop them all afterwards."""
    started: list[Emulator] = []

    def make(scenario: Scenario | str | None = None, **kwargs: Any) -> Emulator:
        kwargs.setdefault("voice_engine", "tones")
        emulator = Emulator(scenario=scenario, **kwargs).start()
        started.append(emulator)
        return emulator

    yield make
    for emulator in started:
        emulator.stop()
    assert not [t for t in threading.enumerate() if t.name == "rtd-emulator"], \
        "an emulator thread outlived stop()"


@pytest.fixture
def emulator(make_emulator: Any) -> Emulator:
    return make_emulator()


@pytest.fixture
def connect(make_emulator: Any) -> Iterator[Any]:
    """Open clients; close them all afterwards (before any emulator stops: see the dependency)."""
    clients: list[Client] = []

    def open_client(url: str, headers: list[str] | None = None) -> Client:
        client = Client(url, headers)
        clients.append(client)
        return client

    yield open_client
    for client in clients:
        client.close()

"""Shared fixtures: the PulseAudio virtual cables for tests marked `pulse`."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from pulse import PulseError, PulseServer, PulseUnavailable, reinit_portaudio  # noqa: E402
from rtdproc import KEY, Daemon  # noqa: E402

if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    # Started as a background job (`pytest &` in a script): SIGINT is ignored, and an ignored
    # signal stays ignored across exec, so the children the Ctrl-C tests interrupt would never
    # hear it. A handled one is reset to the default at exec, as at a terminal.
    signal.signal(signal.SIGINT, signal.default_int_handler)

REQUIRE_ENV = "RTD_REQUIRE_PULSE"


def _unavailable(reason: str) -> None:
    """Skip locally; fail where CI promised PulseAudio (RTD_REQUIRE_PULSE=1)."""
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{reason}; {REQUIRE_ENV}=1 says PulseAudio tests must run here", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def pulse() -> Iterator[PulseServer]:
    """A private PulseAudio daemon with `mic` and `speaker` null sinks, for the whole session.

    Its address is exported into os.environ, and PortAudio is re-initialised so that the ALSA
    `pulse` device is listed.
    """
    problem = ""
    try:
        import sounddevice  # noqa: F401
    except OSError as exc:
        problem = f"PortAudio is not installed ({exc}); `apt-get install libportaudio2`"
    if problem:
        _unavailable(problem)
    server = PulseServer()
    broken = ""
    try:
        server.start()
    except PulseUnavailable as exc:
        problem = str(exc)
    except PulseError as exc:
        broken = str(exc)
    if problem or broken:
        server.stop()
        if problem:
            _unavailable(problem)
        pytest.fail(f"PulseAudio is installed but unusable: {broken}", pytrace=False)
    server.export()
    reinit_portaudio()
    try:
        yield server
    finally:
        server.stop()
        reinit_portaudio()


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

    def start(*args: str, extra_env: dict[str, str] | None = None, **popen) -> Daemon:
        d = Daemon(list(args), {**env, **(extra_env or {})}, **popen)
        started.append(d)
        return d

    yield start
    for d in started:
        if d.proc.poll() is None:
            d.proc.send_signal(signal.SIGKILL)
            d.proc.wait()

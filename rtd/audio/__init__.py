"""Audio in and out of rtd: devices, resampling, the playback buffer and the backends.

Everything crossing this package's boundary is pcm24: 24 kHz mono int16 little-endian PCM.
Backends convert to and from whatever the hardware does. `open_input` / `open_output` validate
at once (device exists, format supported, file readable) so the daemon reports problems at
start-up; `start()` begins streaming.
"""

from __future__ import annotations

from typing import Literal

from rtd.audio.base import RATE, AudioInput, AudioOutput
from rtd.audio.devices import DeviceInfo, list_devices
from rtd.audio.echo import EchoPolicy, Reference, make_policy

__all__ = [
    "Backend",
    "RATE",
    "AudioInput",
    "AudioOutput",
    "DeviceInfo",
    "EchoPolicy",
    "Reference",
    "make_policy",
    "list_devices",
    "open_input",
    "open_output",
]

Backend = Literal["sounddevice", "file"]
"""The backends; the configuration's schema is where a wrong name or a missing path is
reported (as ``audio.input.backend`` etc.), so these functions trust their arguments."""


def open_input(backend: Backend, *, device: str | int = "default", path: str = "",
               block_ms: int = 20, where: str = "audio.input", wait: bool = False) -> AudioInput:
    """Open a microphone (`sounddevice`) or a WAV file played in real time (`file`).

    With ``wait`` a sound device that is missing or busy is not an error: the backend starts
    without it and keeps looking (a daemon must not die of a microphone plugged in late).
    """
    if backend == "file":
        from rtd.audio.file_backend import WavFileInput

        return WavFileInput(path, block_ms=block_ms, where=where)
    from rtd.audio.sounddevice_backend import SoundDeviceInput

    return SoundDeviceInput(device, block_ms=block_ms, where=where, wait=wait)


def open_output(backend: Backend, *, device: str | int = "default", path: str = "",
                buffer_seconds: float = 60.0, block_ms: int = 10, where: str = "audio.output",
                wait: bool = False, reference: Reference | None = None) -> AudioOutput:
    """Open a speaker (`sounddevice`) or a WAV file written in real time (`file`); ``wait`` as
    for `open_input`. A ``reference`` gets a copy of every block handed to the device, for
    the microphone's echo handling (`rtd.audio.echo`)."""
    if backend == "file":
        from rtd.audio.file_backend import WavFileOutput

        return WavFileOutput(path, buffer_seconds=buffer_seconds, where=where,
                             reference=reference)
    from rtd.audio.sounddevice_backend import SoundDeviceOutput

    return SoundDeviceOutput(device, buffer_seconds=buffer_seconds, block_ms=block_ms,
                             where=where, wait=wait, reference=reference)

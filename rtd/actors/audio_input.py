"""The audio input actor: owns the microphone backend and publishes what it hears."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rtd.audio import AudioInput
from rtd.messages import InputAudio
from rtd.supervisor import Bus, RtdActor


class AudioInputActor(RtdActor):
    name = "audio_input"
    receives: tuple[type, ...] = ()

    def __init__(self, bus: Bus, on_crash: Callable[[str, BaseException], None],
                 backend: AudioInput) -> None:
        super().__init__(bus, on_crash)
        self.backend = backend

    def setup(self) -> None:
        # The backend's own thread publishes straight to the bus: one hop to the session.
        self.backend.start(self._heard)

    def _heard(self, pcm: bytes) -> None:
        self.bus.publish(InputAudio(pcm))

    def handle(self, message: Any) -> Any:
        return None

    def release(self) -> None:
        self.backend.stop()

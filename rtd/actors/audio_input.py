"""The audio input actor: owns the microphone backend and publishes what it hears."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from rtd.audio import AudioInput
from rtd.messages import InputAudio, Mute
from rtd.supervisor import Bus, RtdActor

logger = logging.getLogger(__name__)


class AudioInputActor(RtdActor):
    name = "audio_input"
    receives: tuple[type, ...] = (Mute,)

    def __init__(self, bus: Bus, on_crash: Callable[[str, BaseException], None],
                 backend: AudioInput) -> None:
        super().__init__(bus, on_crash)
        self.backend = backend
        self.muted = False

    def setup(self) -> None:
        # The backend's own thread publishes straight to the bus: one hop to the session.
        self.backend.start(self._heard)

    def _heard(self, pcm: bytes) -> None:
        if not self.muted:  # read on the backend's thread; a stale read costs one block
            self.bus.publish(InputAudio(pcm))

    def handle(self, message: Any) -> Any:
        if isinstance(message, Mute) and message.muted != self.muted:
            self.muted = message.muted
            logger.info("microphone %s", "muted" if self.muted else "unmuted")

    def release(self) -> None:
        self.backend.stop()

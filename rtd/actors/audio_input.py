"""The audio input actor: owns the microphone backend and publishes what it hears, after the
echo policy (`rtd.audio.echo`) took the assistant's own voice out."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from rtd.audio import AudioInput, EchoPolicy
from rtd.audio.echo import NoEcho
from rtd.messages import InputAudio, Mute
from rtd.supervisor import Bus, RtdActor

logger = logging.getLogger(__name__)


class AudioInputActor(RtdActor):
    name = "audio_input"
    receives: tuple[type, ...] = (Mute,)

    def __init__(self, bus: Bus, on_crash: Callable[[str, BaseException], None],
                 backend: AudioInput, echo: EchoPolicy | None = None) -> None:
        super().__init__(bus, on_crash)
        self.backend = backend
        self.echo = echo or NoEcho()
        self.muted = False

    def setup(self) -> None:
        # The backend's own thread publishes straight to the bus: one hop to the session.
        self.backend.start(self._heard)
        self.echo.input_latency = self.backend.latency  # how late the room's echo comes back

    def _heard(self, pcm: bytes) -> None:
        # the echo policy runs on every block, muted or not: its state follows the speaker
        try:
            pcm = self.echo.process(pcm)
        except Exception:  # a canceller failing must not silence the microphone for good
            logger.exception("audio.echo: %s failed; sending the microphone unprocessed from "
                             "now on", self.echo.mode)
            self.echo = NoEcho()
        if pcm and not self.muted:  # read on the backend's thread; a stale read costs one block
            self.bus.publish(InputAudio(pcm))

    def handle(self, message: Any) -> Any:
        if isinstance(message, Mute) and message.muted != self.muted:
            self.muted = message.muted
            logger.info("microphone %s", "muted" if self.muted else "unmuted")

    def release(self) -> None:
        self.backend.stop()

"""The audio output actor: hands the assistant's speech to the speaker backend."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rtd.audio import AudioOutput
from rtd.messages import AudioChunk, Interrupt, OutputAudioDone
from rtd.supervisor import Bus, RtdActor


class AudioOutputActor(RtdActor):
    name = "audio_output"
    receives = (AudioChunk, OutputAudioDone, Interrupt)

    def __init__(self, bus: Bus, on_crash: Callable[[str, BaseException], None],
                 backend: AudioOutput) -> None:
        super().__init__(bus, on_crash)
        self.backend = backend

    def setup(self) -> None:
        self.backend.start()

    def handle(self, message: Any) -> Any:
        if isinstance(message, AudioChunk):
            self.backend.play(message.item_id, message.pcm)
        elif isinstance(message, OutputAudioDone):
            self.backend.end_item(message.item_id)
        elif isinstance(message, Interrupt):
            self.backend.clear()

    def release(self) -> None:
        self.backend.stop()

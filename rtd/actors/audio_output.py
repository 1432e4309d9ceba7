"""The audio output actor: hands the assistant's speech to the speaker backend, and tells the
rest of rtd when an item started and stopped at the speaker.

The backend's device callback only moves positions (it must never block, so it never
publishes). A reporter thread of this actor looks at the backend's progress when something
changed (a new item, an item's end, a cut) and then at the moments the next event is due at
the device's pace, and publishes `PlaybackStarted` / `PlaybackStopped`. It sleeps while nothing
is pending: no polling while the box is quiet.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from rtd.audio import AudioOutput
from rtd.messages import (
    AudioChunk,
    Interrupt,
    OutputAudioDone,
    PlaybackStarted,
    PlaybackStopped,
)
from rtd.supervisor import Bus, RtdActor

logger = logging.getLogger(__name__)

MIN_WAIT = 0.005
"""Seconds at least between two looks: an event due "now" waits for the device's next read."""
MAX_WAIT = 0.5
"""Seconds at most between looks while an event is pending on a device that stalled."""
STOP_WAIT_SECONDS = 1.0


class AudioOutputActor(RtdActor):
    name = "audio_output"
    receives = (AudioChunk, OutputAudioDone, Interrupt)

    def __init__(self, bus: Bus, on_crash: Callable[[str, BaseException], None],
                 backend: AudioOutput) -> None:
        super().__init__(bus, on_crash)
        self.backend = backend
        self._last_item: str | None = None
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._reporter: threading.Thread | None = None

    def setup(self) -> None:
        self.backend.start()
        self._reporter = threading.Thread(target=self._report, name="rtd-playback-report",
                                          daemon=True)
        self._reporter.start()

    def handle(self, message: Any) -> Any:
        if isinstance(message, AudioChunk):
            self.backend.play(message.item_id, message.pcm)
            if message.item_id != self._last_item:  # a new item: its start is to be told
                self._last_item = message.item_id
                self._wake.set()
        elif isinstance(message, OutputAudioDone):
            self.backend.end_item(message.item_id)
            self._wake.set()
        elif isinstance(message, Interrupt):
            self.backend.clear()
            self._last_item = None
            self._wake.set()

    def _report(self) -> None:
        """Publish the backend's item events; runs until `release`."""
        timeout: float | None = None
        last_position = -1
        while not self._stopping.is_set():
            woken = self._wake.wait(timeout)
            self._wake.clear()
            if self._stopping.is_set():
                return
            try:
                found = self.backend.progress()
            except Exception:  # the reporter must outlive a surprise, as the device does
                logger.exception("audio_output: reading playback progress failed")
                timeout = MAX_WAIT
                continue
            for item_id in found.started:
                self.bus.publish(PlaybackStarted(item_id))
            for s in found.stopped:
                logger.debug("item %s stopped at the speaker: %d of %d ms heard%s", s.item_id,
                             s.played_ms, s.received_ms, " (cut)" if s.interrupted else "")
                self.bus.publish(PlaybackStopped(s.item_id, s.played_ms, s.received_ms,
                                                 s.interrupted))
            if found.wait is None:
                timeout = None
            elif found.position == last_position and not woken and not found.started \
                    and not found.stopped:
                # the device did not move since the last look (missing, stalled): back off
                timeout = min(MAX_WAIT, max(MIN_WAIT, (timeout or MIN_WAIT) * 2))
            else:
                timeout = max(MIN_WAIT, found.wait)
            last_position = found.position

    def release(self) -> None:
        self._stopping.set()
        self._wake.set()
        reporter, self._reporter = self._reporter, None
        if reporter is not None and reporter is not threading.current_thread():
            reporter.join(timeout=STOP_WAIT_SECONDS)
        self.backend.stop()

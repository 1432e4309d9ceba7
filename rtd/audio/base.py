"""The audio interfaces every backend implements, and the wire format they share.

Kept apart from the backends so that importing the interfaces never pulls in PortAudio.
"""

from __future__ import annotations

import abc
import logging
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, NamedTuple

from rtd.audio.playback import PlaybackBuffer
from rtd.audio.resample import StreamResampler

if TYPE_CHECKING:
    from rtd.audio.echo import Reference

logger = logging.getLogger(__name__)

RATE = 24000
"""The wire rate in Hz: everything rtd exchanges is 24 kHz mono int16 little-endian PCM."""

BYTES_PER_MS = RATE * 2 // 1000
"""Bytes of wire audio (pcm24) per millisecond."""

ITEM_HISTORY = 64
"""How many items' counters are kept; older items report 0 ms."""


class AudioInput(abc.ABC):
    """A source of wire audio (a microphone, a WAV file)."""

    description: str
    """One line for logs and `rtd devices`, e.g. "sounddevice 'USB Audio' at 48000 Hz, 2 ch"."""

    @abc.abstractmethod
    def start(self, on_audio: Callable[[bytes], None]) -> None:
        """Begin streaming: `on_audio(pcm24)` is called with blocks of about `block_ms`.

        It runs on a thread the backend owns (never PortAudio's), so it may take a lock or
        `tell` an actor, and it is never called after `stop()` returns.
        """

    @abc.abstractmethod
    def stop(self) -> None:
        """Stop streaming and release the device; idempotent, returns within about 0.5 s."""

    def health_problem(self) -> str | None:
        """What is wrong with a backend that should be working (for the watchdog), or None."""
        return None

    @property
    def waiting_for(self) -> str | None:
        """Why the device is not open while it is being looked for (missing, busy), or None."""
        return None

    @property
    def latency(self) -> float:
        """Seconds from sound reaching the device to `on_audio` (its reported input latency)."""
        return 0.0


class ItemStopped(NamedTuple):
    """An item ended at the listener: heard to its end, or cut by `clear()`."""

    item_id: str
    played_ms: int
    """Milliseconds heard: read by the device, less its output latency, at most received_ms."""
    received_ms: int
    """Milliseconds received through `play()`, including audio dropped after a cut."""
    interrupted: bool
    """Cut by `clear()` rather than played to its end."""


class OutputProgress(NamedTuple):
    """Item events since the last look (see `AudioOutput.progress`), and when to look again."""

    started: list[str]
    """Items whose first sample left for the device."""
    stopped: list[ItemStopped]
    wait: float | None
    """Seconds until the next event is due at the device's pace; None if none is pending."""
    position: int
    """Frames the device has taken, silence included: unchanged between looks means it is
    stalled (missing, suspended)."""


class AudioOutput(abc.ABC):
    """A sink for wire audio (a speaker, a WAV file), tracked per conversation item.

    Per-item counters exist because barge-in needs to tell the server how much of an item the
    user actually heard (`played_ms`), which lags what was received by the buffered audio.
    """

    description: str

    @abc.abstractmethod
    def start(self) -> None:
        """Open the stream; silence plays until audio is queued."""

    @abc.abstractmethod
    def play(self, item_id: str, pcm24: bytes) -> None:
        """Convert and queue wire audio for an item; never blocks (runs on the WebSocket path)."""

    @abc.abstractmethod
    def end_item(self, item_id: str) -> None:
        """The item's audio is complete: queue the resampler's tail."""

    @abc.abstractmethod
    def clear(self) -> None:
        """Stop playback at once and drop everything queued (barge-in)."""

    @abc.abstractmethod
    def played_ms(self, item_id: str) -> int:
        """Milliseconds of the item's audio heard so far: handed to the device, less the
        device's reported output latency, at most `received_ms`."""

    @abc.abstractmethod
    def progress(self) -> OutputProgress:
        """Items that started or ended since the last call, each reported once.

        Called from a thread that is not the device's (the output actor's reporter), which
        publishes them: the device's callback only moves positions.
        """

    @abc.abstractmethod
    def received_ms(self, item_id: str) -> int:
        """Milliseconds of the item's audio received through `play()`."""

    @property
    @abc.abstractmethod
    def idle(self) -> bool:
        """True when nothing is queued (everything received has been played or cleared)."""

    @abc.abstractmethod
    def stop(self) -> None:
        """Stop and release the device or file; idempotent."""

    def health_problem(self) -> str | None:
        """What is wrong with a backend that should be working (for the watchdog), or None."""
        return None

    @property
    def waiting_for(self) -> str | None:
        """Why the device is not open while it is being looked for (missing, busy), or None."""
        return None


class BufferedOutput(AudioOutput):
    """The part of an output shared by backends: convert per item, queue in a PlaybackBuffer.

    Subclasses own the reader (a PortAudio callback or a paced thread) that drains `buffer`.
    `play`, `end_item` and `clear` run on one caller thread (the output actor) and never block;
    the queries may be called from any thread.

    After `clear()` the item that was being received is cut: audio still arriving for it (deltas
    the server sent before it heard of the barge-in) is counted as received but not played.
    """

    def __init__(self, rate: int, channels: int, buffer_seconds: float,
                 quality: str = "HQ", reference: Reference | None = None) -> None:
        self.rate = rate
        self.channels = channels
        self.buffer = PlaybackBuffer(rate, channels, buffer_seconds)
        self._retired: PlaybackBuffer | None = None
        """A buffer the device's format replaced, until its pending reports are out."""
        self.reference = reference
        """Where the reader copies every block it hands over, for echo handling (or None)."""
        if reference is not None:
            reference.configure(rate, channels)
        # One resampler reused for every item: it is flushed (and so reset) between items.
        self._resampler = StreamResampler(RATE, rate, 1, channels, quality=quality)
        self._current: str | None = None
        self._received: OrderedDict[str, int] = OrderedDict()
        self._cut: OrderedDict[str, None] = OrderedDict()

    def play(self, item_id: str, pcm24: bytes) -> None:
        self._count_received(item_id, len(pcm24))
        if item_id in self._cut:
            return
        if item_id != self._current:
            self._finish_current()
            self._current = item_id
        out = self._resampler.process(pcm24)
        if out:
            self.buffer.write(item_id, out)

    def end_item(self, item_id: str) -> None:
        if item_id == self._current:
            self._finish_current()
        elif item_id in self._received and item_id not in self._cut:
            # received but nothing queued (no device at the time): it ends here, unheard
            self.buffer.finish(item_id)

    def clear(self) -> None:
        self._clear()

    def _clear(self, flushed: bool = False) -> None:
        """`clear`; ``flushed``: the device dropped what it held as well (see PlaybackBuffer)."""
        # Drop the resampler's state too: its tail belongs to audio the user will not hear.
        self._resampler.reset()
        if self._current is not None:
            self._cut[self._current] = None
            while len(self._cut) > ITEM_HISTORY:
                self._cut.popitem(last=False)
            logger.debug("output cleared; further audio for item %s is dropped", self._current)
        self.buffer.clear(self._current, flushed=flushed)
        self._current = None

    def played_ms(self, item_id: str) -> int:
        return min(self.buffer.played_ms(item_id), self.received_ms(item_id))

    def progress(self) -> OutputProgress:
        found = self.buffer.progress()
        retired = self._retired
        if retired is not None:  # a buffer replaced with the device's format: its last reports
            old = retired.progress()
            self._retired = None
            found = found._replace(started=old.started + found.started,
                                   stopped=old.stopped + found.stopped)
        stopped = []
        for item_id, frames, cut in found.stopped:
            received = self.received_ms(item_id)
            stopped.append(ItemStopped(item_id, min(frames * 1000 // self.rate, received),
                                       received, cut))
        return OutputProgress(found.started, stopped, found.wait, found.position)

    def set_latency(self, seconds: float) -> None:
        """The device's reported output latency: how long a sample read takes to be heard."""
        self.buffer.latency = max(0, int(round(seconds * self.rate)))
        if self.reference is not None:
            self.reference.latency = max(0.0, seconds)

    def _hand_over(self, out: object) -> None:
        """Fill a device block from the buffer (the reader's one job) and let the echo
        handling see it: what leaves here is what the room hears."""
        self.buffer.read_into(out)
        if self.reference is not None:
            self.reference.write(out)

    def received_ms(self, item_id: str) -> int:
        return self._received.get(item_id, 0) // BYTES_PER_MS

    @property
    def idle(self) -> bool:
        return self.buffer.idle

    def _finish_current(self) -> None:
        if self._current is None:
            return
        tail = self._resampler.flush()
        if tail:
            self.buffer.write(self._current, tail)
        self.buffer.finish(self._current)
        self._current = None

    def _count_received(self, item_id: str, nbytes: int) -> None:
        self._received[item_id] = self._received.get(item_id, 0) + nbytes
        self._received.move_to_end(item_id)
        while len(self._received) > ITEM_HISTORY:
            self._received.popitem(last=False)

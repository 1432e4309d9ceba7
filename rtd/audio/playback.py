"""The queue between the output actor and the audio device: a preallocated ring of frames.

The actor thread writes converted audio; the PortAudio callback (or the file writer's paced
thread) reads it. The lock is held only for index arithmetic and a memcpy, and `read_into`
allocates nothing but a numpy view, so the callback never waits on Python work.

Positions are absolute frame counts since creation. Each item remembers which spans of those
positions hold its audio, so how much of an item was played follows from the read position
alone: no per-callback bookkeeping, and `clear()` is one assignment.

What the listener has *heard* lags the read position by the device's output latency: frames
read are still in the device's own buffer. The reader keeps one more counter, the silence it
handed over since the last real frame, and from it and the latency the heard position follows
(`heard_position`): when the device has played out, its whole buffer is silence and the last
frame read has been heard. `progress()` turns positions into item events (first frame read,
item heard to its end or to its cut) for a thread that is not the reader to publish; the
reader itself never reports anything.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

logger = logging.getLogger(__name__)

ITEM_HISTORY = 64
"""How many items' spans are remembered; older items report 0 ms."""


@dataclass
class _Item:
    spans: list[list[int]] = field(default_factory=list)
    """[start, end) absolute frame positions holding this item's audio, oldest first."""
    played_before: int = 0
    """Frames of spans already fully played and pruned from `spans`."""
    written: int = 0
    """Frames of this item accepted into the ring."""
    dropped: int = 0
    """Frames of this item that did not fit and were discarded."""
    warned: bool = False
    first: int = -1
    """Absolute position of the item's first frame in the ring; -1 before any was accepted."""
    end: int = -1
    """Absolute position just past the item's last queued frame (trimmed by a cut); -1 if none."""
    finished: bool = False
    """No more audio will be queued for it: ended by `finish` or cut by `clear`."""
    cut: bool = False
    """Ended by `clear` (barge-in) rather than played to its end."""
    told_start: bool = False
    told_stop: bool = False


class Progress(NamedTuple):
    """What `PlaybackBuffer.progress` found: events not reported before, and when to look next."""

    started: list[str]
    """Items whose first frame the device has read since the last call."""
    stopped: list[tuple[str, int, bool]]
    """(item, frames heard, cut) for items that ended at the listener since the last call."""
    wait: float | None
    """Seconds until the next event is due at the current pace; None when nothing is pending."""
    position: int
    """Frames the device has taken, silence included: unchanged means it is stalled."""


class PlaybackBuffer:
    """A bounded ring of int16 interleaved frames in the device's format, tracked per item."""

    def __init__(self, rate: int, channels: int, capacity_seconds: float) -> None:
        if rate <= 0 or channels < 1 or capacity_seconds <= 0:
            raise ValueError(
                f"invalid playback buffer: {rate} Hz, {channels} ch, {capacity_seconds} s"
            )
        self.rate = int(rate)
        self.channels = int(channels)
        self.capacity = max(1, int(round(capacity_seconds * self.rate)))
        """Capacity in frames."""
        self._ring = np.zeros((self.capacity, self.channels), dtype=np.int16)
        self._frame_bytes = 2 * self.channels
        self._lock = threading.Lock()
        self._read = 0
        self._write = 0
        self._items: OrderedDict[str, _Item] = OrderedDict()
        self.latency = 0
        """Frames the device holds between reading them and the listener hearing them (its
        reported output latency); 0 for a file."""
        self._trailing = 0
        """Frames of silence the reader handed over since the last real frame."""
        self._heard = 0
        """The heard position, kept monotonic (see `_heard_position`)."""
        self._handed = 0
        """Frames handed to the device in total, silence included: its clock."""

    # -- writer side (the output actor's thread) ------------------------------------------

    def write(self, item_id: str, pcm: bytes) -> int:
        """Queue int16 interleaved frames for an item; returns frames accepted.

        What does not fit is dropped (the server may send faster than real time, and blocking
        the WebSocket path is worse than losing audio); the first drop per item is a warning.
        """
        if len(pcm) % self._frame_bytes:
            raise ValueError(
                f"playback write of {len(pcm)} bytes is not whole {self.channels}-channel frames"
            )
        data = np.frombuffer(pcm, dtype="<i2").reshape(-1, self.channels)
        n = len(data)
        with self._lock:
            item = self._item(item_id)
            free = self.capacity - (self._write - self._read)
            take = min(n, free)
            if take:
                start = self._write
                idx = start % self.capacity
                first = min(take, self.capacity - idx)
                self._ring[idx : idx + first] = data[:first]
                if take > first:
                    self._ring[: take - first] = data[first:take]
                self._write = start + take
                self._add_span(item, start, start + take)
                item.written += take
            dropped = n - take
            warn = dropped > 0 and not item.warned
            if dropped:
                item.dropped += dropped
                item.warned = True
        if warn:
            logger.warning(
                "playback buffer full (%.1f s): dropped %d ms of item %s; the server is sending "
                "faster than real time beyond the buffer (raise buffer_seconds to keep it)",
                self.capacity / self.rate,
                dropped * 1000 // self.rate,
                item_id,
            )
        return take

    def finish(self, item_id: str) -> None:
        """Note that an item's audio is complete; reports the total dropped, if any."""
        with self._lock:
            item = self._item(item_id)  # an item that got no frames still ends
            dropped = item.dropped
            item.finished = True
        if dropped:
            logger.debug(
                "item %s: %d ms dropped in total on overflow", item_id, dropped * 1000 // self.rate
            )

    def clear(self, current: str | None = None, *, cut: bool = True,
              flushed: bool = False) -> None:
        """Drop everything queued; what was played so far stays counted.

        Items with audio still queued, and ``current`` (the item being received, which may have
        none queued at this instant), are cut: they end once the device has played out what it
        already read of them. Items read to their end are not cut: the listener hears them whole.
        Without ``cut`` (the device went away) nothing is marked as cut by an interrupt: the
        items end, unheard beyond this point, when their audio is complete. ``flushed`` says
        the device dropped what it held too (its stream was aborted, the reader not running):
        then items end where the listener is now, and what the device had read is not heard.
        """
        with self._lock:
            pos = self._heard_position() if flushed else self._read
            for item_id, item in self._items.items():
                queued = item.end > pos
                spans = [s for s in item.spans if s[0] < pos]
                if spans and spans[-1][1] > pos:
                    spans[-1][1] = pos
                item.spans = spans
                if queued:
                    item.end = pos
                if not cut:
                    continue
                if (queued or item_id == current) and not item.finished:
                    item.finished = item.cut = True
                elif queued:
                    item.cut = True
            if cut and current is not None and current not in self._items:
                item = self._item(current)
                item.finished = item.cut = True
            self._write = self._read
            if flushed:  # the device is empty: everything read is behind the listener
                self._trailing = max(self._trailing, self.latency)
                self._heard = self._read

    @property
    def device_holds_audio(self) -> bool:
        """Whether the device may still hold real frames it read (less than its latency of
        silence since the last one)."""
        with self._lock:
            return self._trailing < self.latency

    def device_drained(self) -> None:
        """The device holds nothing any more (it went away): what it read counts as heard."""
        with self._lock:
            self._trailing = max(self._trailing, self.latency)

    # -- reader side (PortAudio callback / paced writer thread) ---------------------------

    def read_into(self, out: object) -> int:
        """Fill the whole writable buffer `out` with queued frames, then silence.

        Returns the frames of real audio written. Runs on the audio callback: no allocation
        beyond a numpy view, no logging, the lock held for a memcpy.
        """
        dest = np.frombuffer(out, dtype=np.int16)  # type: ignore[call-overload]
        frames = len(dest) // self.channels
        dest = dest[: frames * self.channels].reshape(frames, self.channels)
        with self._lock:
            take = min(frames, self._write - self._read)
            if take:
                idx = self._read % self.capacity
                first = min(take, self.capacity - idx)
                dest[:first] = self._ring[idx : idx + first]
                if take > first:
                    dest[first:take] = self._ring[: take - first]
                self._read += take
            self._handed += frames
            if take == frames:
                self._trailing = 0
            elif take:
                self._trailing = frames - take
            else:
                self._trailing += frames
        if take < frames:
            dest[take:] = 0
        return take

    # -- queries ----------------------------------------------------------------------------

    @property
    def idle(self) -> bool:
        """True when every queued frame has been read."""
        with self._lock:
            return self._read >= self._write

    @property
    def queued_frames(self) -> int:
        with self._lock:
            return self._write - self._read

    def read_frames(self, item_id: str) -> int:
        """Frames of the item the device has read (handed over, not necessarily heard yet)."""
        with self._lock:
            item = self._items.get(item_id)
            return self._frames_before(item, self._read) if item is not None else 0

    def played_frames(self, item_id: str) -> int:
        """Frames of the item the listener has heard: read, less the device's latency."""
        with self._lock:
            item = self._items.get(item_id)
            return self._frames_before(item, self._heard_position()) if item is not None else 0

    def played_ms(self, item_id: str) -> int:
        """Milliseconds of the item heard so far (read by the device, corrected for latency)."""
        return self.played_frames(item_id) * 1000 // self.rate

    def heard_position(self) -> int:
        with self._lock:
            return self._heard_position()

    def progress(self) -> Progress:
        """Report items that started (first frame read) or ended (heard to the end or the cut)
        since the last call, each once, and how long until the next one is due."""
        started: list[str] = []
        stopped: list[tuple[str, int, bool]] = []
        wait: float | None = None
        with self._lock:
            pos = self._read
            heard = self._heard_position()
            for item_id, item in self._items.items():
                if item.told_stop:
                    continue
                if not item.told_start and 0 <= item.first < pos:
                    item.told_start = True
                    started.append(item_id)
                if item.finished and heard >= item.end:
                    item.told_stop = True
                    stopped.append((item_id, self._frames_before(item, heard), item.cut))
                    continue
                if not item.told_start and item.first >= 0:
                    wait = _sooner(wait, (item.first + 1 - pos) / self.rate)
                if item.finished:
                    # heard catches up with the read position only as the device plays on
                    wait = _sooner(wait, (item.end - heard) / self.rate)
            handed = self._handed
        return Progress(started, stopped, wait, handed)

    def received_ms(self, item_id: str) -> int:
        """Milliseconds of the item written, including what overflowed and was dropped."""
        with self._lock:
            item = self._items.get(item_id)
            frames = item.written + item.dropped if item else 0
        return frames * 1000 // self.rate

    def dropped_ms(self, item_id: str) -> int:
        """Milliseconds of the item dropped because the buffer was full."""
        with self._lock:
            item = self._items.get(item_id)
            frames = item.dropped if item else 0
        return frames * 1000 // self.rate

    # -- internals (lock held) --------------------------------------------------------------

    def _heard_position(self) -> int:
        """The read position less the frames still in the device. Frames of silence read since
        the last real one fill the device's buffer too, so once they reach its latency the last
        real frame has been heard. Kept monotonic: audio starting after a short silence must
        not make frames already counted as heard unheard again."""
        heard = self._read - max(0, self.latency - self._trailing)
        if heard > self._heard:
            self._heard = heard
        return self._heard

    @staticmethod
    def _frames_before(item: _Item, pos: int) -> int:
        played = item.played_before
        for start, end in item.spans:
            if pos <= start:
                break
            played += min(pos, end) - start
        return played

    def _item(self, item_id: str) -> _Item:
        item = self._items.get(item_id)
        if item is None:
            item = self._items[item_id] = _Item()
            while len(self._items) > ITEM_HISTORY:
                self._items.popitem(last=False)
        return item

    def _add_span(self, item: _Item, start: int, end: int) -> None:
        if item.first < 0:
            item.first = start
        item.end = end
        if item.spans and item.spans[-1][1] == start:
            item.spans[-1][1] = end
            return
        # Interleaved items make a new span; fold spans already played so the list stays short.
        pos = self._read
        while item.spans and item.spans[0][1] <= pos:
            s, e = item.spans.pop(0)
            item.played_before += e - s
        item.spans.append([start, end])


def _sooner(a: float | None, b: float) -> float:
    return b if a is None or b < a else a

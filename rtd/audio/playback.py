"""The queue between the output actor and the audio device: a preallocated ring of frames.

The actor thread writes converted audio; the PortAudio callback (or the file writer's paced
thread) reads it. The lock is held only for index arithmetic and a memcpy, and `read_into`
allocates nothing but a numpy view, so the callback never waits on Python work.

Positions are absolute frame counts since creation. Each item remembers which spans of those
positions hold its audio, so how much of an item was played follows from the read position
alone: no per-callback bookkeeping, and `clear()` is one assignment.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass, field

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
            item = self._items.get(item_id)
            dropped = item.dropped if item else 0
        if dropped:
            logger.debug(
                "item %s: %d ms dropped in total on overflow", item_id, dropped * 1000 // self.rate
            )

    def clear(self) -> None:
        """Drop everything queued; what was played so far stays counted."""
        with self._lock:
            pos = self._read
            for item in self._items.values():
                spans = [s for s in item.spans if s[0] < pos]
                if spans and spans[-1][1] > pos:
                    spans[-1][1] = pos
                item.spans = spans
            self._write = pos

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

    def played_frames(self, item_id: str) -> int:
        with self._lock:
            item = self._items.get(item_id)
            if item is None:
                return 0
            pos = self._read
            played = item.played_before
            for start, end in item.spans:
                if pos <= start:
                    break
                played += min(pos, end) - start
            return played

    def played_ms(self, item_id: str) -> int:
        """Milliseconds of the item read by the device so far."""
        return self.played_frames(item_id) * 1000 // self.rate

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

    def _item(self, item_id: str) -> _Item:
        item = self._items.get(item_id)
        if item is None:
            item = self._items[item_id] = _Item()
            while len(self._items) > ITEM_HISTORY:
                self._items.popitem(last=False)
        return item

    def _add_span(self, item: _Item, start: int, end: int) -> None:
        if item.spans and item.spans[-1][1] == start:
            item.spans[-1][1] = end
            return
        # Interleaved items make a new span; fold spans already played so the list stays short.
        pos = self._read
        while item.spans and item.spans[0][1] <= pos:
            s, e = item.spans.pop(0)
            item.played_before += e - s
        item.spans.append([start, end])

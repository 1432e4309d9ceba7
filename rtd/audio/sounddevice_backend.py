"""Microphone and speaker through sounddevice (PortAudio), resampled to and from the wire.

Input and output are separate Raw streams: a full-duplex `sounddevice.Stream` on ALSA's `pulse`
device spins a whole core. The PortAudio callbacks only copy bytes and count; conversion and
delivery run on threads rtd owns, so a slow consumer can never stall the audio thread.

Devices come and go. An unplugged USB microphone rarely raises anything: PortAudio's ALSA host
prints an error, the callbacks stop and the stream turns inactive. So one watcher thread per
process (`_Watcher`) looks at every open stream's callback count ten times a second; a stream
that went quiet is closed and its device looked for again, by name, with backoff. PortAudio
only sees a re-plugged card after it is terminated and initialised again, which invalidates
every stream: then all streams (input and output alike) are closed, PortAudio re-initialised,
and all reopened. That happens when /dev/snd changes (a card came or went), when no other
stream runs, and else at most every RESCAN_SECONDS; in between, the missing device is tried
from PortAudio's current list, which does not disturb the other stream. A device missing or
busy when rtd starts is looked for the same way.

Each callback is Python, so it needs the GIL every block. While a stream is open the
interpreter's switch interval is shortened (`_SHORT_TURNS`): with CPython's default, any other
busy thread may keep the GIL 5 ms at a turn, and a few such turns empty a 20 ms output buffer.
"""

from __future__ import annotations

import logging
import os
import queue
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, Literal

from rtd.audio.base import RATE, AudioInput, BufferedOutput
from rtd.audio.devices import (
    PORTAUDIO_LOCK,
    DeviceInfo,
    Kind,
    choose_rate,
    find_device,
    import_sounddevice,
    stable_name,
)
from rtd.audio.echo import Reference
from rtd.audio.playback import PlaybackBuffer
from rtd.audio.resample import StreamResampler
from rtd.exceptions import AmbiguousDeviceError, DeviceError

logger = logging.getLogger(__name__)

INPUT_QUEUE_SECONDS = 2.0
"""Captured audio held between the callback and the pump before blocks are dropped."""
OUTPUT_BLOCK_MS = 10
"""Default output callback period: the device holds about two periods (PortAudio's ALSA host
asks for two), so this sets how soon a reply is heard and an interruption silences it."""
LATENCY = "low"
"""PortAudio's suggested latency for both streams. Its default, "high", makes ALSA buffer up
to four times more than the block needs: each reply was heard some 25 ms later for nothing."""
RESAMPLE_QUALITY = "LQ"
"""soxr quality on the live paths. HQ holds back about 32 ms of audio at 24 <-> 48 kHz in each
direction (its filter's group delay) - 64 ms of every round trip on a 48 kHz USB device; LQ
holds about 1 ms and is flat to 8 kHz (-5 dB at 10 kHz), which speech does not miss. Files
and prompts keep HQ."""
STOP_WAIT_SECONDS = 0.5
WATCH_PERIOD = 0.1
"""Seconds between the watcher's looks at the streams."""
LOST_AFTER = 0.5
"""Seconds without a callback after which a running stream's device counts as gone. Callbacks
come every 20-50 ms, so this is ten of them missed, and a loss is noticed within a second."""
FIRST_CALLBACK_GRACE = 3.0
"""Seconds after opening during which a stream may pause this long (sound servers wake idle
devices slowly and settle their latency) before it counts as gone; an inactive stream counts
at once."""
RETRY_FIRST = 0.5
RETRY_LIMIT = 3.0
"""Seconds between attempts to open a missing device: doubling from RETRY_FIRST up to this."""
RESCAN_SECONDS = 30.0
"""Seconds between re-initialisations of PortAudio while other streams run (each interrupts
them briefly), unless /dev/snd changes: a card plugged in is looked for at once."""
XRUN_REPORT_SECONDS = 60.0
"""Underruns and overruns are logged at most once per stream per this many seconds."""
STALE_AFTER = 5.0
"""Seconds a running stream may go without callbacks before the health check reports it: past
LOST_AFTER the watcher should have closed it, so this means the watcher itself is stuck."""
SND_DIR = "/dev/snd"
SWITCH_INTERVAL = 0.001
"""Seconds another thread may hold the GIL while an audio callback waits for it, while any
stream is open (CPython's default is 0.005). bench/underruns.py: with two busy Python threads
beside a 10 ms-block speaker, the default let it run dry 185 times in 9.4 s of speech, this
none; the cost is a thread switch per millisecond only while two threads want the CPU at once.
"""

State = Literal["waiting", "running", "paused", "stopped"]


def _open_error(where: str, kind: str, name: str, rate: int, ch: int, exc: BaseException) -> str:
    return (
        f"{where}.device: cannot open {kind} device {name!r} at {rate} Hz, {ch} ch: {exc}. "
        "It may be busy (a raw hw: device allows one user) or unplugged; run `rtd devices`."
    )


def _cards() -> tuple[str, ...]:
    """The ALSA device nodes: they change when a sound card is plugged in or out."""
    try:
        return tuple(sorted(os.listdir(SND_DIR)))
    except OSError:
        return ()


class _ShortTurns:
    """Holds the interpreter's switch interval at SWITCH_INTERVAL while any stream is open.

    Counted, so the last stream to close puts back what was there; a value someone else set
    meanwhile is left alone, and a shorter one than ours is never lengthened.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._holders = 0
        self._saved: float | None = None

    def hold(self) -> None:
        with self._lock:
            self._holders += 1
            if self._holders == 1:
                now = sys.getswitchinterval()
                if now > SWITCH_INTERVAL:
                    self._saved = now
                    sys.setswitchinterval(SWITCH_INTERVAL)
                    logger.debug("switch interval %.1f ms while audio streams are open "
                                 "(was %.1f ms)", SWITCH_INTERVAL * 1000, now * 1000)

    def release(self) -> None:
        with self._lock:
            self._holders = max(0, self._holders - 1)
            if self._holders == 0 and self._saved is not None:
                if abs(sys.getswitchinterval() - SWITCH_INTERVAL) < 1e-6:
                    sys.setswitchinterval(self._saved)
                self._saved = None


_SHORT_TURNS = _ShortTurns()


class _Device:
    """What the microphone and the speaker share: a device found by name, opened, watched,
    closed when it goes away and reopened when it is back. Called with PORTAUDIO_LOCK held."""

    kind: Kind = "input"
    verb = "capturing from"

    def __init__(self, spec: str | int, where: str, wait: bool) -> None:
        self._sd = import_sounddevice(where)
        self.where = where
        self.spec = spec
        self.wait = wait
        """Keep looking for a device missing or busy at start instead of failing."""
        self.info: DeviceInfo | None = None
        self.state: State = "waiting"
        self.problem = ""
        """Why the device is not open (missing, busy, gone); empty while it is."""
        self.callbacks = 0
        """PortAudio callbacks so far (counted on PortAudio's thread)."""
        self.xruns = 0
        """Callbacks PortAudio flagged with an underflow or overflow."""
        self.reopened = 0
        """Times the device came back after it went away or was missing."""
        self._stream: Any = None
        self._opened_at = 0.0
        self._seen = 0
        self._seen_at = time.monotonic()
        self._xruns_told = 0
        self._xruns_at = time.monotonic()
        self._retry_at = 0.0
        self._retry_delay = RETRY_FIRST
        self._told = False
        self._holds_turns = False

    # -- finding and opening ------------------------------------------------------------------

    def _lookup(self) -> str | int:
        """What to look for: the configured name, or for an index the name the device had (an
        index means another device once cards are renumbered)."""
        is_index = isinstance(self.spec, int) or str(self.spec).strip().lstrip("-").isdigit()
        return stable_name(self.info) if is_index and self.info is not None else self.spec

    def _resolve(self) -> tuple[DeviceInfo, int, int]:
        info = find_device(self._lookup(), self.kind, self.where)
        rate, channels = choose_rate(info, self.kind, where=self.where)
        return info, rate, channels

    def _first_look(self, wait: bool) -> tuple[DeviceInfo, int, int] | None:
        """The device and its format at start; None (the problem kept) when it is missing and
        ``wait`` says to keep looking. A name several devices share always raises."""
        try:
            with PORTAUDIO_LOCK:
                return self._resolve()
        except AmbiguousDeviceError:
            raise
        except DeviceError as exc:
            if not wait:
                raise
            self.problem = str(exc)
            return None

    def _make_stream(self, info: DeviceInfo) -> Any:
        raise NotImplementedError

    def _format(self, rate: int, channels: int) -> None:
        """Adopt the format the device accepts now (it may differ after a re-plug)."""
        raise NotImplementedError

    def _open(self) -> None:
        info, rate, channels = self._resolve()
        self._format(rate, channels)
        self.info = info
        try:
            stream = self._make_stream(info)
        except Exception as exc:
            raise DeviceError(_open_error(self.where, self.kind, info.name, rate, channels,
                                          exc)) from None
        try:
            stream.start()
        except Exception as exc:
            _close_stream(stream, self.where)
            raise DeviceError(_open_error(self.where, self.kind, info.name, rate, channels,
                                          exc)) from None
        self._stream = stream
        self._opened_at = self._seen_at = time.monotonic()
        self._seen = self.callbacks
        self.state = "running"
        self.problem = ""

    def _close(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            _close_stream(stream, self.where)

    def _begin(self) -> None:
        """Open the device now; with ``wait``, a missing or busy one is looked for instead."""
        if not self._holds_turns:
            self._holds_turns = True
            _SHORT_TURNS.hold()
        with PORTAUDIO_LOCK:
            try:
                self._open()
            except AmbiguousDeviceError:
                raise
            except DeviceError as exc:
                if not self.wait:
                    raise
                self._waiting(str(exc), time.monotonic())
            _WATCHER.add(self)
        if self.state == "running":
            logger.info("%s: %s %s", self.where, self.verb, self.description)

    def _end(self) -> None:
        _WATCHER.remove(self)
        with PORTAUDIO_LOCK:
            self._close()
            self.state = "stopped"
        if self._holds_turns:
            self._holds_turns = False
            _SHORT_TURNS.release()

    @property
    def description(self) -> str:
        if self.info is None:
            return f"sounddevice {self.spec!r}, not available yet ({self.problem})"
        return f"sounddevice {self.info.name!r} at {self.rate} Hz, {self.channels} ch"

    # -- watching (the watcher's thread) ------------------------------------------------------

    def _check(self, now: float) -> None:
        if self.state != "running":
            return
        if self.callbacks != self._seen:
            self._seen, self._seen_at = self.callbacks, now
            return
        try:
            active = bool(self._stream.active)
        except Exception:  # a stream PortAudio no longer knows
            active = False
        quiet = now - self._seen_at
        settling = now - self._opened_at < FIRST_CALLBACK_GRACE
        if active and quiet < (FIRST_CALLBACK_GRACE if settling else LOST_AFTER):
            return
        name = self.info.name if self.info else str(self.spec)
        how = "its stream stopped" if not active else f"no callbacks for {quiet:.1f} s"
        logger.warning("%s: %s device %r went away (%s; unplugged?); closing it and looking "
                       "for it by name", self.where, self.kind, name, how)
        self._close()
        self._lost()
        self._retry_delay = RETRY_FIRST
        self._told = True  # this outage is told: the attempts to reopen it stay quiet
        self._waiting(f"device {name!r} went away", now)

    def _lost(self) -> None:
        """The device went away: drop what belonged to it."""

    def _waiting(self, problem: str, now: float) -> None:
        """Not open, for ``problem``: said once per outage, then retried with backoff."""
        self.state = "waiting"
        self.problem = problem
        if self._told:
            logger.debug("%s (retrying in %.1f s)", problem, self._retry_delay)
        else:
            self._told = True
            logger.warning("%s (rtd keeps looking for it)", problem)
        self._retry_at = now + self._retry_delay
        self._retry_delay = min(RETRY_LIMIT, self._retry_delay * 2)

    def _back(self) -> None:
        self.reopened += 1
        self._retry_delay = RETRY_FIRST
        self._told = False
        logger.info("%s: %s device is back: %s %s", self.where, self.kind, self.verb,
                    self.description)

    def _report_xruns(self, now: float) -> None:
        if now - self._xruns_at < XRUN_REPORT_SECONDS:
            return
        new = self.xruns - self._xruns_told
        if new:
            word = "overflows" if self.kind == "input" else "underflows"
            logger.warning("%s: %d %s %s in the last %.0f s (%d since start)", self.where, new,
                           self.kind, word, now - self._xruns_at, self.xruns)
        self._xruns_told, self._xruns_at = self.xruns, now

    def health_problem(self) -> str | None:
        """A running stream whose callbacks stopped without the watcher noticing."""
        quiet = time.monotonic() - self._seen_at
        if self.state == "running" and quiet > STALE_AFTER:
            return f"{self.where}: no audio callbacks for {quiet:.0f} s"
        return None

    @property
    def waiting_for(self) -> str | None:
        """Why the device is not open, while rtd looks for it; None when it is open."""
        return self.problem if self.state == "waiting" else None

    @property
    def stats(self) -> dict[str, Any]:
        return {"state": self.state, "callbacks": self.callbacks, "xruns": self.xruns,
                "reopened": self.reopened}


class _Watcher:
    """The one thread that watches every open stream and brings devices back."""

    def __init__(self) -> None:
        self._members: list[_Device] = []
        self._thread: threading.Thread | None = None
        self._cards: tuple[str, ...] = ()
        self._rescan_at = 0.0
        self.tick = time.monotonic()
        """When the watcher last looked: a stale value means PortAudio hangs."""

    def add(self, member: _Device) -> None:
        with PORTAUDIO_LOCK:
            if member not in self._members:
                self._members.append(member)
            if self._thread is None:
                self._cards = _cards()
                self._thread = threading.Thread(target=self._run, name="rtd-audio-watch",
                                                daemon=True)
                self._thread.start()

    def remove(self, member: _Device) -> None:
        with PORTAUDIO_LOCK:
            if member in self._members:
                self._members.remove(member)

    def _run(self) -> None:
        pause = threading.Event()
        while True:
            with PORTAUDIO_LOCK:
                if not self._members:
                    self._thread = None
                    return
                try:
                    self._tick(time.monotonic())
                except Exception:  # never let a surprise end the watching
                    logger.exception("audio device watcher failed; going on")
            pause.wait(WATCH_PERIOD)

    def _tick(self, now: float) -> None:
        self.tick = now
        for member in self._members:
            member._check(now)
            member._report_xruns(now)
        waiting = [m for m in self._members if m.state == "waiting"]
        if not waiting:
            return
        cards = _cards()
        plugged, self._cards = cards != self._cards, cards
        due = [m for m in waiting if now >= m._retry_at]
        undisturbed = not any(m.state == "running" for m in self._members)
        if plugged or (due and (undisturbed or now >= self._rescan_at)):
            self._rescan(now)
        else:
            for member in due:  # from PortAudio's current list: the other streams go on
                self._reopen(member, now)

    def _reopen(self, member: _Device, now: float) -> None:
        was = member.state
        try:
            member._open()
        except DeviceError as exc:
            member._waiting(str(exc), now)
            return
        if was == "waiting":
            member._back()

    def _rescan(self, now: float) -> None:
        """Close every stream, re-initialise PortAudio, and open every device that is there.

        Only this finds a re-plugged card, but it interrupts the streams that were fine, so it
        runs when a card appeared in /dev/snd, when nothing else plays or captures, and else
        every RESCAN_SECONDS at most; in between the missing device is tried from PortAudio's
        current list (enough for a busy device or one behind a sound server).
        """
        self._rescan_at = now + RESCAN_SECONDS
        for member in self._members:
            if member.state == "running":
                member._close()
                member.state = "paused"
        sd = import_sounddevice()
        try:
            sd._terminate()
            sd._initialize()
        except Exception as exc:  # PortAudioError
            logger.warning("cannot re-initialise PortAudio: %s; trying again", exc)
            for member in self._members:
                if member.state == "paused":
                    member._waiting(f"{member.where}: PortAudio failed: {exc}", now)
            return
        for member in self._members:
            if member.state in ("paused", "waiting"):
                self._reopen(member, now)


_WATCHER = _Watcher()


def watcher_tick() -> float:
    """When the device watcher last ran (time.monotonic()), for health checks."""
    return _WATCHER.tick


class SoundDeviceInput(_Device, AudioInput):
    """Captures from a PortAudio device and delivers pcm24 in `block_ms` blocks."""

    kind = "input"
    verb = "capturing from"

    def __init__(self, device: str | int = "default", *, block_ms: int = 40,
                 where: str = "audio.input", wait: bool = False) -> None:
        _Device.__init__(self, device, where, wait)
        self.block_ms = int(block_ms)
        self.rate = 0
        self.channels = 0
        self._generation = 0
        """Bumped when the device's format changes, so the pump starts a new resampler."""
        self._out_block = max(2, RATE * self.block_ms // 1000 * 2)
        depth = max(4, int(INPUT_QUEUE_SECONDS * 1000 / max(1, self.block_ms)))
        self._queue: queue.Queue[tuple[int, bytes]] = queue.Queue(maxsize=depth)
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._deliver_lock = threading.Lock()
        self._started = False
        self._stopped = False
        self.dropped_blocks = 0
        """Blocks the callback discarded because the pump fell behind."""
        found = self._first_look(wait)
        if found is not None:
            self.info = found[0]
            self._format(found[1], found[2])

    @property
    def overflows(self) -> int:
        """PortAudio reported input overflow (the device dropped samples)."""
        return self.xruns

    @property
    def latency(self) -> float:
        stream = self._stream
        try:
            return float(stream.latency) if stream is not None else 0.0
        except (TypeError, ValueError, AttributeError):
            return 0.0

    def _format(self, rate: int, channels: int) -> None:
        if (rate, channels) != (self.rate, self.channels):
            self.rate, self.channels = rate, channels
            self._generation += 1
        while True:  # blocks of the old stream are stale, whatever their format
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break

    def _make_stream(self, info: DeviceInfo) -> Any:
        return self._sd.RawInputStream(
            device=info.index,
            samplerate=self.rate,
            channels=self.channels,
            dtype="int16",
            blocksize=max(1, self.rate * self.block_ms // 1000),
            latency=LATENCY,
            callback=self._callback,
        )

    def start(self, on_audio: Callable[[bytes], None]) -> None:
        if self._started or self._stopped:
            raise RuntimeError(f"{self.where}: input already started (inputs are single-use)")
        self._started = True
        self._thread = threading.Thread(
            target=self._pump,
            args=(on_audio,),
            name=f"rtd-audio-in[{self.spec}]",
            daemon=True,
        )
        self._thread.start()
        try:
            self._begin()
        except BaseException:
            self.stop()
            raise

    def _callback(self, indata: Any, frames: int, time_info: Any, status: Any) -> None:
        # PortAudio's thread: count, copy and hand over, nothing else (no logging, no blocking).
        self.callbacks += 1
        if status:
            self.xruns += 1
        try:
            self._queue.put_nowait((self._generation, bytes(indata)))
        except queue.Full:
            self.dropped_blocks += 1

    def _pump(self, on_audio: Callable[[bytes], None]) -> None:
        generation = -1
        resampler: StreamResampler | None = None
        pending = bytearray()
        while not self._stopping.is_set():
            try:
                made, block = self._queue.get(timeout=0.1)
            except queue.Empty:
                continue
            if made != generation or resampler is None:
                generation = made
                resampler = StreamResampler(self.rate, RATE, self.channels, 1,
                                            quality=RESAMPLE_QUALITY)
                pending.clear()
            pending += resampler.process(block)
            while len(pending) >= self._out_block:
                chunk = bytes(pending[: self._out_block])
                del pending[: self._out_block]
                with self._deliver_lock:
                    if self._stopping.is_set():
                        return
                    try:
                        on_audio(chunk)
                    except Exception:
                        logger.exception("%s: on_audio callback failed", self.where)

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self._stopping.set()
        self._end()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=STOP_WAIT_SECONDS)
            # Wait out a delivery already in progress so none happens after we return.
            if self._deliver_lock.acquire(timeout=STOP_WAIT_SECONDS):
                self._deliver_lock.release()
            else:
                logger.warning("%s: on_audio callback still running at stop", self.where)
        if self.xruns or self.dropped_blocks:
            logger.info("%s: %d input overflows, %d blocks dropped", self.where, self.xruns,
                        self.dropped_blocks)

    @property
    def stats(self) -> dict[str, Any]:
        return {**super().stats, "overflows": self.xruns, "dropped_blocks": self.dropped_blocks}


class SoundDeviceOutput(_Device, BufferedOutput):
    """Plays pcm24 on a PortAudio device; the callback drains a PlaybackBuffer."""

    kind = "output"
    verb = "playing to"

    def __init__(self, device: str | int = "default", *, buffer_seconds: float = 60.0,
                 block_ms: int = OUTPUT_BLOCK_MS, where: str = "audio.output",
                 wait: bool = False, reference: Reference | None = None) -> None:
        _Device.__init__(self, device, where, wait)
        self.buffer_seconds = buffer_seconds
        self.block_ms = int(block_ms)
        found = self._first_look(wait)
        info, rate, channels = found or (None, RATE, 1)  # the format until the device is found
        BufferedOutput.__init__(self, rate, channels, buffer_seconds, RESAMPLE_QUALITY,
                                reference)
        self.info = info
        self._started = False
        self._stopped = False

    @property
    def underflows(self) -> int:
        """Callbacks PortAudio flagged with an output underflow (the device ran dry)."""
        return self.xruns

    def _format(self, rate: int, channels: int) -> None:
        if (rate, channels) == (self.rate, self.channels):
            return
        # Runs while no stream reads the buffer. What was queued was converted for the old
        # format; it is dropped with it.
        logger.info("%s: the device now takes %d Hz, %d ch", self.where, rate, channels)
        self.rate, self.channels = rate, channels
        # the items the old buffer still owes a PlaybackStopped end there, unheard beyond it
        old = self.buffer
        old.clear(cut=False)
        old.device_drained()
        self._retired = old
        self.buffer = PlaybackBuffer(rate, channels, self.buffer_seconds)
        self._resampler = StreamResampler(RATE, rate, 1, channels, quality=RESAMPLE_QUALITY)
        self._current = None
        if self.reference is not None:
            self.reference.configure(rate, channels)

    def _make_stream(self, info: DeviceInfo) -> Any:
        return self._sd.RawOutputStream(
            device=info.index,
            samplerate=self.rate,
            channels=self.channels,
            dtype="int16",
            blocksize=max(1, self.rate * self.block_ms // 1000),
            latency=LATENCY,
            callback=self._callback,
        )

    def _open(self) -> None:
        super()._open()
        try:
            latency = float(self._stream.latency)
        except (TypeError, ValueError, AttributeError):  # a backend that reports none
            latency = 0.0
        # what the callback hands over is heard this much later: played_ms counts from there
        self.set_latency(latency)

    def _lost(self) -> None:
        # what was queued for a speaker that is gone will not be heard, nor what it held
        self.buffer.clear(cut=False)
        self.buffer.device_drained()

    def start(self) -> None:
        if self._started or self._stopped:
            raise RuntimeError(f"{self.where}: output already started (outputs are single-use)")
        self._started = True
        self._begin()

    def play(self, item_id: str, pcm24: bytes) -> None:
        if self.state == "waiting":  # no speaker: the reply is not kept to be played later
            self._count_received(item_id, len(pcm24))
            return
        super().play(item_id, pcm24)

    def clear(self) -> None:
        """Barge-in: drop what is queued and what the device holds.

        The device holds about two callback periods (its reported latency); left alone they
        play out after the cut. Aborting the stream drops them (PortAudio's abort, unlike stop,
        discards the device's buffers) and starting it again takes a few milliseconds, silence
        the listener wants anyway. Nothing playing: nothing to abort.
        """
        with PORTAUDIO_LOCK:
            stream = self._stream
            if (stream is None or self.state != "running"
                    or not (self.buffer.queued_frames or self.buffer.device_holds_audio)):
                self._clear()
                return
            try:
                stream.abort()
            except Exception as exc:  # the device may be going away: the plain cut still holds
                logger.debug("%s: abort on barge-in failed: %s", self.where, exc)
                self._clear()
                return
            self._clear(flushed=True)
            try:
                stream.start()
            except Exception as exc:
                logger.warning("%s: restarting the speaker after a barge-in failed: %s; "
                               "looking for it again", self.where, exc)
                self._close()
                self._waiting(f"{self.where}: restart failed: {exc}", time.monotonic())

    def _callback(self, outdata: Any, frames: int, time_info: Any, status: Any) -> None:
        # PortAudio's thread: fill from the ring (silence on underrun), count, no logging.
        self.callbacks += 1
        if status:
            self.xruns += 1
        self._hand_over(outdata)

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self._end()
        if self.xruns:
            logger.info("%s: %d output underflows", self.where, self.xruns)

    @property
    def stats(self) -> dict[str, Any]:
        return {**super().stats, "underflows": self.xruns,
                "queued_frames": self.buffer.queued_frames}


def _close_stream(stream: Any, where: str) -> None:
    """abort() rather than stop(): stop() waits for queued device buffers to play out."""
    for step in (stream.abort, stream.close):
        try:
            step()
        except Exception as exc:  # a vanished device fails here too; nothing left to do
            logger.debug("%s: %s failed: %s", where, step.__name__, exc)

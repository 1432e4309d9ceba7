"""PlaybackBuffer: silence on underrun, per-item progress from the read position, clear, bounds."""

from __future__ import annotations

import logging
import threading

import numpy as np
import pytest

from rtd.audio.playback import ITEM_HISTORY, PlaybackBuffer


def _pcm(n: int, start: int = 1, channels: int = 1) -> bytes:
    """n frames of a recognisable ramp (never zero, so silence is distinguishable)."""
    values = (np.arange(n * channels) % 20000) + start
    return values.astype("<i2").tobytes()


def _read(buf: PlaybackBuffer, frames: int) -> tuple[int, np.ndarray]:
    out = bytearray(b"\x7f" * (frames * buf.channels * 2))  # garbage that must be overwritten
    got = buf.read_into(out)
    return got, np.frombuffer(bytes(out), "<i2")


def test_underrun_gives_silence() -> None:
    buf = PlaybackBuffer(24000, 1, 1.0)
    buf.write("a", _pcm(100))
    got, out = _read(buf, 480)
    assert got == 100
    assert np.array_equal(out[:100], np.frombuffer(_pcm(100), "<i2"))
    assert not out[100:].any()
    got, out = _read(buf, 480)
    assert got == 0 and not out.any()
    assert buf.idle


def test_played_and_received_per_item() -> None:
    buf = PlaybackBuffer(24000, 1, 1.0)
    buf.write("a", _pcm(240))  # 10 ms
    buf.write("b", _pcm(480))  # 20 ms
    assert (buf.received_ms("a"), buf.received_ms("b")) == (10, 20)
    assert (buf.played_ms("a"), buf.played_ms("b")) == (0, 0)
    _read(buf, 120)
    assert (buf.played_ms("a"), buf.played_ms("b")) == (5, 0)
    _read(buf, 360)
    assert (buf.played_ms("a"), buf.played_ms("b")) == (10, 10)
    assert not buf.idle
    _read(buf, 1000)
    assert (buf.played_ms("a"), buf.played_ms("b")) == (10, 20)
    assert buf.idle
    assert buf.played_ms("unknown") == buf.received_ms("unknown") == 0


def test_interleaved_items_are_tracked_separately() -> None:
    buf = PlaybackBuffer(24000, 1, 1.0)
    for _ in range(3):
        buf.write("a", _pcm(240))
        buf.write("b", _pcm(240))
    _read(buf, 240 * 5)
    assert (buf.played_ms("a"), buf.played_ms("b")) == (30, 20)


def test_clear_drops_queue_and_keeps_played() -> None:
    buf = PlaybackBuffer(24000, 1, 2.0)
    buf.write("a", _pcm(24000))  # 1 s
    _read(buf, 240)
    buf.clear()
    assert buf.idle
    assert buf.played_ms("a") == 10
    got, out = _read(buf, 480)
    assert got == 0 and not out.any()
    assert buf.played_ms("a") == 10
    buf.write("b", _pcm(240, start=5))
    got, out = _read(buf, 240)
    assert got == 240 and out[0] == 5
    assert (buf.played_ms("a"), buf.played_ms("b")) == (10, 10)


def test_overflow_drops_with_one_warning_per_item(caplog: pytest.LogCaptureFixture) -> None:
    buf = PlaybackBuffer(24000, 1, 0.1)  # 2400 frames
    caplog.set_level(logging.WARNING, logger="rtd.audio.playback")
    assert buf.write("a", _pcm(3600)) == 2400  # 150 ms offered, 100 ms fit
    assert buf.write("a", _pcm(240)) == 0
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "dropped 50 ms" in warnings[0].getMessage() and "a" in warnings[0].getMessage()
    assert buf.queued_frames == 2400
    assert buf.dropped_ms("a") == 60
    assert buf.received_ms("a") == 160
    got, out = _read(buf, 3000)
    assert got == 2400
    assert np.array_equal(out[:2400], np.frombuffer(_pcm(2400), "<i2"))
    assert buf.played_ms("a") == 100
    buf.write("b", _pcm(4800))
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 2


def test_ring_wraps_without_losing_order() -> None:
    buf = PlaybackBuffer(1000, 2, 0.05)  # 50 frames, stereo
    rng = np.random.default_rng(0)
    stream = np.arange(5000 * 2, dtype=np.int64) % 30000 + 1
    wrote = read = 0
    collected = []
    while read < 5000:
        n = min(int(rng.integers(1, 40)), 5000 - wrote, buf.capacity - buf.queued_frames)
        if n > 0:
            buf.write("x", stream[wrote * 2 : (wrote + n) * 2].astype("<i2").tobytes())
            wrote += n
        m = int(rng.integers(1, 40))
        got, out = _read(buf, m)
        collected.append(out[: got * 2])
        read += got
    assert np.array_equal(np.concatenate(collected), stream.astype(np.int16))
    assert buf.played_frames("x") == 5000


def test_reads_into_numpy_and_rejects_partial_frames() -> None:
    buf = PlaybackBuffer(24000, 2, 1.0)
    buf.write("a", _pcm(10, channels=2))
    out = np.full((16, 2), 99, dtype=np.int16)
    assert buf.read_into(out) == 10
    assert not out[10:].any()
    with pytest.raises(ValueError):
        buf.write("a", b"\x00\x01\x02")


def test_item_history_is_bounded() -> None:
    buf = PlaybackBuffer(24000, 1, 10.0)
    for i in range(ITEM_HISTORY + 6):
        buf.write(f"item{i}", _pcm(24))
    _read(buf, 24 * (ITEM_HISTORY + 6))
    assert buf.received_ms("item0") == 0
    assert buf.played_ms(f"item{ITEM_HISTORY + 5}") == 1


def test_concurrent_reader_sees_every_frame_once() -> None:
    """A writer and a callback-like reader on two threads: content arrives intact, in order."""
    buf = PlaybackBuffer(48000, 1, 0.05)
    total = 200_000
    stream = (np.arange(total) % 30000 + 1).astype("<i2")
    collected: list[np.ndarray] = []
    done = threading.Event()

    def reader() -> None:
        got_total = 0
        out = bytearray(256 * 2)
        while got_total < total and not done.wait(0.0005):
            got = buf.read_into(out)
            collected.append(np.frombuffer(bytes(out[: got * 2]), "<i2"))
            got_total += got

    t = threading.Thread(target=reader)
    t.start()
    pos = 0
    while pos < total:
        free = buf.capacity - buf.queued_frames
        n = min(free, 1000, total - pos)
        if n:
            assert buf.write("x", stream[pos : pos + n].tobytes()) == n
            pos += n
        else:
            threading.Event().wait(0.001)
    t.join(timeout=30)
    done.set()
    assert not t.is_alive()
    assert np.array_equal(np.concatenate(collected), stream)


def test_heard_lags_the_read_by_the_device_latency() -> None:
    buf = PlaybackBuffer(24000, 1, 1.0)
    buf.latency = 480  # 20 ms in the device
    buf.write("a", _pcm(2400))  # 100 ms
    buf.finish("a")
    _read(buf, 1200)
    assert buf.read_frames("a") == 1200
    assert buf.played_frames("a") == 720  # read, less what the device still holds
    _read(buf, 1200)
    assert buf.idle and buf.played_frames("a") == 1920
    assert buf.progress().stopped == []  # read to its end, not yet heard to its end
    _read(buf, 240)  # silence fills the device: half of the last 20 ms is heard
    assert buf.played_frames("a") == 2160
    _read(buf, 240)
    assert buf.played_frames("a") == 2400
    assert buf.progress().stopped == [("a", 2400, False)]


def test_progress_reports_start_and_end_once_each() -> None:
    buf = PlaybackBuffer(24000, 1, 1.0)
    buf.write("a", _pcm(480))
    buf.write("b", _pcm(480))
    first = buf.progress()
    assert (first.started, first.stopped) == ([], [])
    assert first.wait == pytest.approx(1 / 24000)  # a's first frame is next
    buf.finish("a")
    _read(buf, 240)
    found = buf.progress()
    assert found.started == ["a"] and found.stopped == []
    assert found.wait == pytest.approx(240 / 24000)  # a ends in 10 ms
    _read(buf, 480)
    found = buf.progress()
    assert found.started == ["b"] and found.stopped == [("a", 480, False)]
    assert found.wait is None  # b is not finished: nothing is due
    buf.finish("b")
    _read(buf, 480)
    assert buf.progress().stopped == [("b", 480, False)]
    assert buf.progress() == ([], [], None, 1200)  # the device's clock


def test_clear_cuts_queued_and_current_items_but_not_ones_read_whole() -> None:
    buf = PlaybackBuffer(24000, 1, 2.0)
    buf.latency = 240
    buf.write("whole", _pcm(240))
    buf.finish("whole")
    buf.write("long", _pcm(24000))
    buf.finish("long")
    _read(buf, 480)  # all of "whole" and 10 ms of "long" read
    buf.clear("receiving")  # an item being received with nothing queued yet
    found = buf.progress()
    assert found.started == ["whole", "long"]
    # "whole" is heard; the device still holds the 10 ms of "long" it read
    assert found.stopped == [("whole", 240, False), ("receiving", 0, True)]
    _read(buf, 240)
    assert buf.progress().stopped == [("long", 240, True)]
    buf.write("receiving", _pcm(240))  # late audio of a cut item is not reported again
    assert buf.progress().stopped == []


def test_an_item_without_frames_ends_at_once() -> None:
    buf = PlaybackBuffer(24000, 1, 1.0)
    buf.finish("empty")  # received, but nothing reached the buffer (no device at the time)
    assert buf.progress() == ([], [("empty", 0, False)], None, 0)


def test_a_flushed_clear_cuts_where_the_listener_is() -> None:
    """The device dropped what it held (its stream aborted): the cut item ends at once, at the
    heard position, and the next item is counted from the device's new start."""
    buf = PlaybackBuffer(24000, 1, 2.0)
    buf.latency = 480
    buf.write("long", _pcm(24000))
    _read(buf, 2400)  # 100 ms read; the device still holds 20 ms of it
    assert buf.device_holds_audio
    buf.clear("long", flushed=True)
    assert buf.progress().stopped == [("long", 1920, True)]
    assert not buf.device_holds_audio
    buf.write("next", _pcm(240))
    buf.finish("next")
    _read(buf, 240)
    assert buf.played_frames("next") == 0  # it is in the device now, 20 ms from the listener
    _read(buf, 480)
    assert buf.progress().stopped == [("next", 240, False)]


def test_items_of_a_buffer_replaced_for_a_new_device_format_still_end() -> None:
    """A speaker re-plugged with another format gets a new buffer: the items the old one held
    must still be reported stopped, or `speaking` would never end."""
    from rtd.audio.base import BufferedOutput

    class Output(BufferedOutput):
        description = "test output"

        def start(self) -> None: ...

        def stop(self) -> None: ...

    out = Output(24000, 1, 1.0)
    out.play("a", _pcm(2400))
    out.end_item("a")
    old = out.buffer  # what SoundDeviceOutput._format does on a new format
    old.clear(cut=False)
    old.device_drained()
    out._retired = old
    out.buffer = PlaybackBuffer(48000, 2, 1.0)
    (stopped,) = out.progress().stopped
    assert (stopped.item_id, stopped.played_ms, stopped.interrupted) == ("a", 0, False)
    assert out.progress().stopped == []

"""The push_to_talk sender: key names, its self-check, and real input_event records through a
pipe into the sender running on its own thread (the sender actor's way)."""

from __future__ import annotations

import os
import struct
import threading

import pytest

from rtd.builtin.senders import (
    INPUT_EVENT,
    KEY_CODES,
    PushToTalkSender,
    PushToTalkSettings,
    key_code,
)
from rtd.components import SenderContext
from rtd.messages import EndTurn, StartTurn


def record(code: int, value: int, kind: int = 1) -> bytes:
    return struct.pack("@llHHi", 1_700_000_000, 123, kind, code, value)


def test_the_record_is_the_kernels_struct_input_event():
    assert INPUT_EVENT.size == (24 if struct.calcsize("l") == 8 else 16)


@pytest.mark.parametrize(("name", "code"), [
    ("KEY_SPACE", 57), ("key_enter", 28), ("BTN_0", 0x100), ("BTN_9", 0x109), ("KEY_F1", 59),
    ("KEY_F10", 68), ("KEY_F12", 88), ("KEY_A", 30), ("KEY_Q", 16), ("KEY_M", 50),
    ("KEY_1", 2), ("KEY_0", 11), ("57", 57), ("0x39", 57), ("BTN_SOUTH", 0x130),
])
def test_key_names_and_numbers(name, code):
    assert key_code(name) == code


def test_an_unknown_key_name_says_what_was_meant():
    with pytest.raises(ValueError, match=r"unknown key 'KEY_SPCE' \(did you mean 'KEY_SPACE'\?\)"):
        key_code("KEY_SPCE")
    with pytest.raises(ValueError, match="outside the kernel's key codes"):
        key_code("4000")
    assert len(set(KEY_CODES.values())) == len(KEY_CODES)  # no name shadows another


def test_the_settings_need_a_device_and_a_known_key():
    with pytest.raises(ValueError, match="device: required"):
        PushToTalkSettings()
    with pytest.raises(ValueError, match="key: unknown key 'SPACEBAR'"):
        PushToTalkSettings(device="/dev/input/event0", key="SPACEBAR")


def test_the_check_names_a_missing_a_wrong_and_an_unreadable_device(tmp_path):
    missing = PushToTalkSettings(device=str(tmp_path / "event9"))
    assert PushToTalkSender.check(missing) == [
        f"device: {tmp_path}/event9 does not exist; list the input devices with ls -l "
        "/dev/input/by-id/ (or cat /proc/bus/input/devices)"]
    (tmp_path / "file").write_text("")
    [problem] = PushToTalkSender.check(PushToTalkSettings(device=str(tmp_path / "file")))
    assert "is not an input device" in problem
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    assert PushToTalkSender.check(PushToTalkSettings(device=str(fifo))) == []
    if os.geteuid() != 0:  # root reads anything
        fifo.chmod(0)
        [problem] = PushToTalkSender.check(PushToTalkSettings(device=str(fifo)))
        assert "usermod -aG input" in problem


def test_press_and_release_of_the_key_are_a_turn(tmp_path):
    fifo = tmp_path / "event0"
    os.mkfifo(fifo)
    writer = os.open(fifo, os.O_RDWR | os.O_NONBLOCK)
    sent: list[object] = []
    got = threading.Condition()

    def publish(message: object) -> None:
        with got:
            sent.append(message)
            got.notify_all()

    ctx = SenderContext("push_to_talk", publish)
    sender = PushToTalkSender(PushToTalkSettings(device=str(fifo), key="KEY_SPACE"))
    thread = threading.Thread(target=sender.run, args=(ctx,), daemon=True)
    thread.start()
    try:
        # a press split across two writes, a sync, repeats, another key, the release
        press = record(57, 1)
        os.write(writer, press[:10])
        os.write(writer, press[10:] + record(0, 0, kind=0) + record(57, 2) + record(57, 2)
                 + record(30, 1) + record(30, 0) + record(57, 1))
        os.write(writer, record(57, 0) + record(57, 0))
        with got:
            assert got.wait_for(lambda: len(sent) >= 2, timeout=5)
    finally:
        ctx.stopping.set()
        sender.stop()
        thread.join(timeout=5)
        os.close(writer)
    assert not thread.is_alive()
    assert sent == [StartTurn(), EndTurn()]


def test_a_pipe_whose_writer_left_ends_the_sender(tmp_path):
    fifo = tmp_path / "event0"
    os.mkfifo(fifo)
    sender = PushToTalkSender(PushToTalkSettings(device=str(fifo)))
    ctx = SenderContext("push_to_talk", lambda m: None)
    done = threading.Event()

    def run() -> None:
        sender.run(ctx)
        done.set()

    threading.Thread(target=run, daemon=True).start()
    writer = os.open(fifo, os.O_WRONLY)  # blocks until the sender opened it
    os.write(writer, record(57, 1))
    os.close(writer)
    assert done.wait(timeout=5)

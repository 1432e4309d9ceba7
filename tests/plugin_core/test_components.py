"""Sender and receiver actors, the built-in ones, and the tools actor's deadlines."""

from __future__ import annotations

import io
import json
import logging
import os
import socket
import threading
import time

import pykka
import pytest
from rtdproc import wait_until

from rtd.actors.receiver import ReceiverActor
from rtd.actors.sender import SenderActor
from rtd.actors.tools import ToolsActor
from rtd.builtin.receivers import (
    ConsoleReceiver,
    ConsoleSettings,
    TranscriptLogReceiver,
    TranscriptLogSettings,
)
from rtd.builtin.senders import SocketSender, SocketSettings, StdinSender
from rtd.components import (
    AudioTranscript,
    ErrorEvent,
    InputTranscript,
    Receiver,
    Sender,
    StateEvent,
    TextChunk,
    ToolCallEvent,
    UserText,
)
from rtd.messages import ToolCall
from rtd.supervisor import LOSSY_BACKLOG, Bus, Child, Ping, Supervisor
from rtd.tools import tool


@pytest.fixture(autouse=True)
def _stop_actors():
    yield
    pykka.ActorRegistry.stop_all()



class Recorder:
    """A bus observer collecting messages."""

    def __init__(self, bus: Bus) -> None:
        self.seen: list[object] = []
        bus.observe(self.seen.append)

    def of(self, kind):
        return [m for m in self.seen if isinstance(m, kind)]


# -- receivers ---------------------------------------------------------------------------------

class Flaky(Receiver):
    name = "flaky"
    events = ("audio_transcript",)

    def __init__(self, settings=None):
        super().__init__(settings)
        self.got: list[str] = []

    def receive(self, event):
        if event.text == "bad":
            raise ValueError("cannot handle this")
        self.got.append(event.text)


def test_receiver_that_raises_keeps_receiving(caplog):
    bus = Bus()
    receiver = Flaky()
    ref = ReceiverActor.start(bus, lambda n, e: None, receiver)
    bus.subscribe("r", ReceiverActor.receives(Flaky))
    bus.attach("r", ref)
    for text in ("one", "bad", "two"):
        bus.publish(AudioTranscript("i", text))
    ref.ask(Ping(), timeout=5)
    assert receiver.got == ["one", "two"]
    assert "receivers.flaky failed on a audio_transcript event (1 so far): ValueError: " \
           "cannot handle this" in caplog.text


def test_async_receivers_are_awaited():
    class Async(Receiver):
        name = "async"
        events = ("state",)
        got: list[str] = []

        async def receive(self, event):
            self.got.append(event.state)

    ref = ReceiverActor.start(Bus(), lambda n, e: None, Async())
    ref.tell(StateEvent("listening"))
    ref.ask(Ping(), timeout=5)
    assert Async.got == ["listening"]


def test_lossy_chunks_are_dropped_for_a_receiver_that_falls_behind():
    bus = Bus()
    release = threading.Event()

    class Slow(Receiver):
        name = "slow"
        events = ("text_chunk",)

        def receive(self, event):
            release.wait(5)

    ref = ReceiverActor.start(bus, lambda n, e: None, Slow())
    core = ReceiverActor.start(bus, lambda n, e: None, Slow())
    bus.subscribe("slow", ReceiverActor.receives(Slow), lossy=True)
    bus.subscribe("core", ReceiverActor.receives(Slow))  # a core actor never loses a chunk
    bus.attach("slow", ref)
    bus.attach("core", core)
    try:
        for i in range(LOSSY_BACKLOG + 50):
            bus.publish(TextChunk("i", str(i)))
        assert bus.dropped["slow"] >= 40
        assert ref.actor_inbox.qsize() <= LOSSY_BACKLOG + 1
        assert "core" not in bus.dropped
        assert core.actor_inbox.qsize() >= LOSSY_BACKLOG + 49
    finally:
        release.set()


def test_console_receiver_prints_the_conversation():
    out = io.StringIO()
    console = ConsoleReceiver(ConsoleSettings(), stream=out)
    for event in (InputTranscript("u", "What time is it?"),
                  ToolCallEvent("c", "clock", "{}", '{"time": "10:00"}'),
                  AudioTranscript("a", "It is ten."),
                  AudioTranscript("b", "Once upon", interrupted=True),
                  ErrorEvent("server", "rate_limited", "slow down")):
        console.receive(event)
    assert out.getvalue().splitlines() == [
        "you: What time is it?", 'tool: clock({}) -> {"time": "10:00"}', "assistant: It is ten.",
        "assistant (interrupted): Once upon", "error (server): rate_limited: slow down"]
    quiet = io.StringIO()
    ConsoleReceiver(ConsoleSettings(show_tools=False), stream=quiet).receive(
        ToolCallEvent("c", "clock", "{}", "x"))
    assert quiet.getvalue() == ""


def test_transcript_log_writes_one_synced_line_per_turn(tmp_path):
    path = tmp_path / "deep" / "log.jsonl"
    log = TranscriptLogReceiver(TranscriptLogSettings(path=str(path)))
    log.start()
    log.receive(InputTranscript("u", "Hello"))
    # the line is on disk before stop(): a crash now loses nothing
    assert json.loads(path.read_text().splitlines()[0])["text"] == "Hello"
    log.receive(AudioTranscript("a", "Hi there"))
    log.receive(ToolCallEvent("c", "clock", "{}", "{}"))
    log.receive(AudioTranscript("b", "Once upon", interrupted=True))
    log.stop()
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    assert [(x["role"], x["text"]) for x in lines] == [
        ("user", "Hello"), ("assistant", "Hi there"), ("tool", "clock({}) -> {}"),
        ("assistant", "Once upon")]
    assert [x.get("interrupted", False) for x in lines] == [False, False, False, True]
    assert all("T" in x["time"] for x in lines)


def test_transcript_log_unwritable_path_is_named(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    log = TranscriptLogReceiver(TranscriptLogSettings(path=str(blocker / "log.jsonl")))
    with pytest.raises(OSError, match=r"receivers.transcript_log.path: cannot append to"):
        log.start()


# -- senders -----------------------------------------------------------------------------------

def start_sender(sender: Sender) -> tuple[Bus, Recorder, pykka.ActorRef]:
    bus = Bus()
    rec = Recorder(bus)
    ref = SenderActor.start(bus, lambda n, e: None, sender)
    ref.ask(Ping(), timeout=5)
    return bus, rec, ref


def test_socket_sender_accepts_lines_and_answers_ok(tmp_path):
    path = tmp_path / "rtd.sock"
    _bus, rec, ref = start_sender(SocketSender(SocketSettings(path=str(path), mode="0600")))
    assert wait_until(path.exists)
    # the socket appears with its final mode (it is renamed into place), no staging left over
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rtd.sock"]
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(5)
        s.connect(str(path))
        s.sendall(b"turn on the radio\n\nand the lights\n")
        reader = s.makefile("rb")
        assert [reader.readline(), reader.readline()] == [b"ok\n", b"ok\n"]
    assert wait_until(lambda: len(rec.of(UserText)) == 2)
    assert rec.of(UserText) == [UserText("turn on the radio"), UserText("and the lights")]
    ref.stop(timeout=5)
    assert not path.exists()  # removed on stop


def test_socket_sender_refuses_a_non_socket_path(tmp_path, caplog):
    path = tmp_path / "notes.txt"
    path.write_text("keep me")
    caplog.set_level(logging.WARNING, "test")
    SocketSender(SocketSettings(path=str(path))).run(_Ctx())  # returns: it stays down
    assert "exists and is not a socket" in caplog.text
    assert "the socket sender is not running" in caplog.text
    assert path.read_text() == "keep me"


def test_rtd_say_talks_to_the_socket_sender(tmp_path):
    import subprocess
    import sys

    path = tmp_path / "s.sock"
    _bus, rec, ref = start_sender(SocketSender(SocketSettings(path=str(path))))
    assert wait_until(path.exists)
    proc = subprocess.run([sys.executable, "-m", "rtd", "say", "--socket", str(path),
                           "what's", "the", "time"], capture_output=True, text=True, timeout=20)
    assert proc.returncode == 0, proc.stderr
    assert wait_until(lambda: rec.of(UserText) == [UserText("what's the time")])
    ref.stop(timeout=5)
    proc = subprocess.run([sys.executable, "-m", "rtd", "say", "--socket", str(path), "hi"],
                          capture_output=True, text=True, timeout=20)
    assert proc.returncode == 1
    assert f"nothing listens on {path}: is rtd running with a [senders.socket] table?" in \
        proc.stderr


def test_stdin_sender_reads_lines_until_eof():
    r, w = os.pipe()
    stream = os.fdopen(r, "r")
    _bus, rec, ref = start_sender(StdinSender(stream=stream))
    with os.fdopen(w, "w") as writer:
        writer.write("hello\n  \nworld\n")
    assert wait_until(lambda: len(rec.of(UserText)) == 2)
    assert [m.text for m in rec.of(UserText)] == ["hello", "world"]
    ref.stop(timeout=5)


def test_sending_after_stop_is_refused_once_with_a_clear_line(caplog):
    caplog.set_level(logging.WARNING)
    release = threading.Event()
    results: list[bool] = []

    class Late(Sender):
        name = "late"

        def run(self, ctx):
            ctx.stopping.wait(5)
            release.wait(5)
            results.extend([ctx.send_text("too late"), ctx.send_text("again")])

    _bus, rec, ref = start_sender(Late())
    ref.stop(block=False)
    release.set()
    assert wait_until(lambda: len(results) == 2)
    assert results == [False, False] and rec.of(UserText) == []
    assert caplog.text.count("sender late sent UserText after it was stopped; ignored") == 1


def test_crashing_sender_is_restarted_with_backoff(caplog):
    """The first crash is logged with its traceback, each later one as one line with a count."""
    caplog.set_level(logging.INFO)
    runs: list[int] = []

    class Crashy(Sender):
        name = "crashy"

        def run(self, ctx):
            runs.append(1)
            if len(runs) <= 2:
                raise RuntimeError("lost the serial port")
            ctx.stopping.wait(10)

    def start(bus, crash):
        return SenderActor.start(bus, crash, Crashy())

    sup = Supervisor([Child("senders.crashy", start, critical=False)], max_restarts=0,
                     restart_first=0.05)
    sup.start()
    runner = threading.Thread(target=sup.run, daemon=True)
    runner.start()
    assert wait_until(lambda: len(runs) == 3, timeout=10)
    assert "senders.crashy crashed: SenderFailed: RuntimeError: lost the serial port; " \
           "restarting it in 0 s" in caplog.text
    assert "senders.crashy crashed again (2 crashes since start): SenderFailed: RuntimeError: " \
           "lost the serial port; restarting it in 0 s" in caplog.text
    assert caplog.text.count("Traceback") == 1  # once, with the first crash
    assert "Unhandled exception" not in caplog.text  # pykka's own report is not repeated
    # (a crash before its start-up was confirmed counts as a crash of the restart itself)
    assert wait_until(lambda: "senders.crashy restarted" in caplog.text, timeout=10)
    assert runner.is_alive()  # a component never ends the daemon, even with max_restarts=0
    sup.stop()


def test_async_sender_is_cancelled_on_stop():
    import asyncio

    cancelled = threading.Event()

    class Waiter(Sender):
        name = "waiter"

        async def run(self, ctx):
            try:
                await asyncio.sleep(60)
            except asyncio.CancelledError:
                cancelled.set()
                raise

    _bus, _rec, ref = start_sender(Waiter())
    time.sleep(0.1)
    ref.stop(timeout=5)
    assert cancelled.wait(5)


class _Ctx:
    """Just enough SenderContext for calling run() directly."""

    def __init__(self):
        self.stopping = threading.Event()
        self.log = logging.getLogger("test")


# -- tools actor -------------------------------------------------------------------------------

@tool(timeout=0.3)
def slow(seconds: float) -> str:
    """Sleep, then answer."""
    time.sleep(seconds)
    return "done"


@tool
def add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


def test_tools_actor_runs_validates_and_enforces_deadlines(caplog):
    bus = Bus()
    rec = Recorder(bus)
    ref = ToolsActor.start(bus, lambda n, e: None,
                           {"slow": (slow, None, None), "add": (add, None, 5.0)})
    ref.ask(Ping(), timeout=5)
    ref.tell(ToolCall("c1", "add", '{"a": 2, "b": 3}'))
    ref.tell(ToolCall("c2", "add", '{"a": "two"}'))
    ref.tell(ToolCall("c3", "slow", '{"seconds": 3}'))
    ref.tell(ToolCall("c4", "missing", "{}"))
    assert wait_until(lambda: len(rec.of(ToolCallEvent)) == 4, timeout=10)
    out = {r.call_id: r.output for r in rec.of(ToolCallEvent)}
    assert out["c1"] == "5"
    assert "invalid arguments" in json.loads(out["c2"])["error"]
    assert json.loads(out["c3"]) == {"error": "the tool did not finish within 0.3 seconds"}
    assert json.loads(out["c4"]) == {"error": "no tool named missing is enabled on this device"}
    assert "tool slow did not finish within 0.3 s; the model was told" in caplog.text
    events = {e.call_id: e for e in rec.of(ToolCallEvent)}
    assert events["c1"] == ToolCallEvent("c1", "add", '{"a": 2, "b": 3}', "5")



"""The transport against the real emulator on loopback, one fault at a time.

Every wait is bounded; nothing asserts how long something took. Where a delay matters, the
test compares what happened with the delay the transport itself logged.
"""

from __future__ import annotations

import json
import logging
import struct
import threading
import time
from collections.abc import Callable, Iterator
from email.utils import formatdate
from typing import Any

import pytest
from websockets.sync.server import serve

from rtd.emulator import Emulator
from rtd.exitcodes import EX_CONFIG, EX_NOPERM
from rtd.protocol import events
from rtd.protocol.endings import Ending
from rtd.protocol.providers import Endpoint
from rtd.protocol.transport import Backoff, Transport, _Frames

TIMEOUT = 10.0  # seconds any single wait may take before the test fails
FAST = Backoff(first=0.05, limit=0.2, healthy_after=30.0)
HELLO = {"type": "session.update",
         "session": {"type": "realtime", "audio": {"input": {"turn_detection": None}}}}


def wait_until(predicate: Callable[[], Any], timeout: float = TIMEOUT, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout} s waiting for {what or predicate}")


def transport_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("rtd-transport")]


class Peer:
    """The callbacks' side: records what the transport reported, in order, with the time."""

    def __init__(self, on_connected: Callable[[Transport, int], None] | None = None) -> None:
        self.log: list[tuple[str, int, Any, float]] = []
        self.lock = threading.Lock()
        self.transport: Transport | None = None
        self._then = on_connected

    def on_event(self, generation: int, event: dict[str, Any]) -> None:
        with self.lock:
            self.log.append(("event", generation, event, time.time()))

    def on_connected(self, generation: int, url: str) -> None:
        with self.lock:
            self.log.append(("connected", generation, url, time.time()))
        if self._then is not None:
            assert self.transport is not None
            self._then(self.transport, generation)

    def on_disconnected(self, generation: int, ending: Ending) -> None:
        with self.lock:
            self.log.append(("disconnected", generation, ending, time.time()))

    def entries(self, kind: str) -> list[tuple[str, int, Any, float]]:
        with self.lock:
            return [e for e in self.log if e[0] == kind]

    def connected(self, generation: int) -> bool:
        return any(e[1] == generation for e in self.entries("connected"))

    def ending(self, generation: int) -> Ending | None:
        found = [e[2] for e in self.entries("disconnected") if e[1] == generation]
        return found[0] if found else None

    def types(self, generation: int) -> list[str]:
        return [e[2]["type"] for e in self.entries("event") if e[1] == generation]

    def done(self, generation: int) -> bool:
        return "response.done" in self.types(generation)


def ask(transport: Transport, generation: int) -> None:
    """One user text turn on that connection."""
    transport.send(events.user_text("Hello"), generation)
    transport.send(events.response_create(), generation)


@pytest.fixture
def make_emulator() -> Iterator[Callable[..., Emulator]]:
    started: list[Emulator] = []

    def make(**kwargs: Any) -> Emulator:
        kwargs.setdefault("voice_engine", "tones")
        emulator = Emulator(**kwargs).start()
        started.append(emulator)
        return emulator

    yield make
    for emulator in started:
        emulator.stop()


@pytest.fixture
def make_transport() -> Iterator[Callable[..., tuple[Transport, Peer]]]:
    """Build transports wired to a Peer; stop them afterwards and check their threads end."""
    made: list[Transport] = []

    def make(url: str, peer: Peer | None = None, *, headers: dict[str, str] | None = None,
             hello: list[dict[str, Any]] | None = None, start: bool = True,
             **kwargs: Any) -> tuple[Transport, Peer]:
        peer = peer or Peer()
        kwargs.setdefault("backoff", FAST)
        kwargs.setdefault("connect_timeout", 5.0)
        first = [HELLO] if hello is None else hello
        transport = Transport(Endpoint(url, headers or {}), hello=lambda: list(first),
                              on_event=peer.on_event, on_connected=peer.on_connected,
                              on_disconnected=peer.on_disconnected, **kwargs)
        peer.transport = transport
        made.append(transport)
        if start:
            transport.start()
        return transport, peer

    yield make
    for transport in made:
        transport.stop()
    wait_until(lambda: not transport_threads(), 5.0, "the transport threads to end")


# -- order and generations ----------------------------------------------------------------------


def test_hello_goes_first_on_every_connection_and_the_queue_keeps_its_order(
        make_emulator, make_transport):
    emu = make_emulator(faults=[{"at": "response.created", "do": "close", "code": 4321,
                                 "reason": "x"}])
    transport, peer = make_transport(emu.url, Peer(ask), start=False)
    transport.send_audio(b"\x01\x00" * 2400)  # held until the first connection, after hello
    transport.start()
    wait_until(lambda: peer.done(2), what="a complete reply on connection 2")
    assert [e["type"] for e in emu.sessions[0].client_events] == [
        "session.update", "input_audio_buffer.append", "conversation.item.create",
        "response.create"]
    assert [e["type"] for e in emu.sessions[1].client_events] == [
        "session.update", "conversation.item.create", "response.create"]
    assert emu.sessions[0].input_audio == b"\x01\x00" * 2400


def test_events_carry_the_generation_of_their_connection(make_emulator, make_transport):
    emu = make_emulator(faults=[{"at": "response.created", "do": "drop"}])
    transport, peer = make_transport(emu.url, Peer(ask))
    wait_until(lambda: peer.done(2), what="a complete reply on connection 2")
    kinds = [(kind, gen) for kind, gen, _, _ in peer.log]
    first_of_2 = kinds.index(("connected", 2))
    assert kinds[0] == ("connected", 1)
    assert ("disconnected", 1) in kinds[:first_of_2]
    assert all(gen == 1 for _, gen in kinds[:first_of_2])
    assert all(gen == 2 for _, gen in kinds[first_of_2:])
    created = [e[2] for e in peer.entries("event") if e[2]["type"] == "session.created"]
    assert [e["session"]["id"] for e in created] == [s.id for s in emu.sessions]
    assert transport.generation == 2 and transport.reconnects == 1 and transport.connected


@pytest.mark.parametrize("fault", [
    {"do": "drop"}, {"do": "reset"},
    {"do": "close", "code": 1000}, {"do": "close", "code": 1011, "reason": "server error"},
    {"do": "close", "code": 4000}, {"do": "close", "code": 4321, "reason": "x"},
    {"do": "close", "code": 1005}, {"do": "close", "code": 1015}, {"do": "close", "code": 2999},
    {"do": "close"},
], ids=lambda f: "-".join(str(v) for v in f.values()))
def test_a_connection_that_ends_mid_reply_is_replaced(make_emulator, make_transport, fault):
    emu = make_emulator(faults=[{"at": "response.output_audio.delta", "nth": 3, **fault}])
    _, peer = make_transport(emu.url, Peer(ask))
    wait_until(lambda: peer.done(2), what="a complete reply on connection 2")
    ending = peer.ending(1)
    assert ending is not None and ending.action == "retry" and ending.delay is None
    assert peer.types(1).count("response.output_audio.delta") == 3
    if "code" in fault:
        assert f"code {fault['code']}" in ending.reason
    elif fault["do"] == "close":
        assert "no code" in ending.reason
    elif fault["do"] == "reset":
        assert "reset" in ending.reason
    else:
        assert "without a close frame" in ending.reason
    assert len(emu.sessions) == 2


def test_a_session_that_expires_is_replaced_at_once(make_emulator, make_transport, caplog):
    caplog.set_level(logging.INFO, "rtd.protocol.transport")
    emu = make_emulator(max_session_seconds=1.0)
    _, peer = make_transport(emu.url, backoff=Backoff(first=5.0, healthy_after=0.5))
    wait_until(lambda: peer.connected(2), what="connection 2")
    ending = peer.ending(1)
    assert ending is not None and ending.action == "retry" and ending.delay == 0.0
    assert "session_expired" in ending.reason
    assert "reconnecting now" in caplog.text
    assert emu.attempts == 2


# -- refusals and delays ------------------------------------------------------------------------


@pytest.mark.parametrize(("fault", "delay"), [
    ({"status": 503, "retry_after": "1"}, 1.0),
    ({"status": 429, "headers": {"x-ratelimit-reset-requests": "1s"}}, 1.0),
    ({"status": 503, "retry_after": "date"}, None),
], ids=["503-retry-after", "429-ratelimit-reset", "503-http-date"])
def test_a_refused_upgrade_waits_as_long_as_the_server_says(make_emulator, make_transport,
                                                             caplog, fault, delay):
    caplog.set_level(logging.INFO, "rtd.protocol.transport")
    if fault.get("retry_after") == "date":
        fault = {**fault, "retry_after": formatdate(time.time() + 2, usegmt=True)}
    emu = make_emulator(faults=[{"at": "upgrade", "do": "http", **fault}])
    transport, peer = make_transport(emu.url)
    wait_until(lambda: peer.connected(1), what="connection 1")
    refused = [r for r in caplog.records if "retrying in" in r.getMessage()]
    assert len(refused) == 1 and f"HTTP {fault['status']}" in refused[0].getMessage()
    logged = float(refused[0].getMessage().split("retrying in ")[1].split(" s")[0])
    assert transport.last_ending is not None and transport.last_ending.action == "retry_after"
    if delay is not None:
        assert logged == delay
    else:  # an HTTP date two seconds ahead, at one-second resolution
        assert logged > 0
    # the log shows the wait rounded to 0.1 s: 1.86 s is logged as "1.9"
    assert peer.entries("connected")[0][3] - refused[0].created >= logged - 0.05
    assert emu.attempts == 2
    assert not peer.entries("disconnected")  # a retried refusal is no disconnection


@pytest.mark.parametrize(("setup", "exit_code", "words"), [
    ({"emulator": {"api_key": "right-key-123"}}, EX_NOPERM, "HTTP 401"),
    ({"emulator": {"api_key": "right-key-123", "auth_failure": "close"}}, EX_NOPERM,
     "invalid_api_key"),
    ({"headers": {"OpenAI-Beta": "realtime=v1"}}, EX_CONFIG, "beta_api_shape_disabled"),
    ({"emulator": {"faults": [{"at": "upgrade", "do": "http", "status": 404}]}}, EX_CONFIG,
     "HTTP 404"),
    ({"emulator": {"faults": [{"at": "session.updated", "do": "error", "error": {
        "type": "invalid_request_error", "code": "model_not_found",
        "message": "The model 'x' does not exist."}}]}}, EX_CONFIG, "model_not_found"),
], ids=["http-401", "invalid-api-key-3000", "beta-4000", "http-404", "model-not-found"])
def test_a_fatal_answer_ends_the_transport(make_emulator, make_transport, setup, exit_code,
                                           words):
    emu = make_emulator(**setup.get("emulator", {}))
    headers = {"Authorization": "Bearer wrong-key-456", **setup.get("headers", {})}
    transport, peer = make_transport(emu.url, headers=headers)
    wait_until(lambda: peer.entries("disconnected"), what="the fatal ending")
    ((_, generation, ending, _),) = peer.entries("disconnected")
    assert ending.action == "fatal" and ending.exit_code == exit_code
    assert words in ending.reason and "wrong-key-456" not in ending.reason
    assert generation == 1
    wait_until(lambda: not transport_threads(), what="the transport threads to end")
    assert emu.attempts == 1
    assert transport.last_ending == ending


# -- dead peers ---------------------------------------------------------------------------------


def test_a_frozen_peer_without_pongs_is_declared_dead_and_replaced(make_emulator,
                                                                   make_transport, caplog):
    caplog.set_level(logging.INFO, "rtd.protocol.transport")
    emu = make_emulator(faults=[{"at": "response.created", "when": "before",
                                 "do": "stall_reading"}])
    _, peer = make_transport(emu.url, Peer(ask), ping_interval=0.3, pong_timeout=1.0)
    wait_until(lambda: peer.done(2), what="a complete reply on connection 2")
    ending = peer.ending(1)
    assert ending is not None and ending.action == "retry"
    assert ending.reason == f"no pong from {emu.url} for 1 s: the server stalled"
    lines = [r.getMessage() for r in caplog.records if "no pong" in r.getMessage()]
    assert len(lines) == 1 and "the server stalled; reconnecting in" in lines[0]


def test_a_silent_peer_with_a_response_due_is_declared_dead_and_replaced(make_emulator,
                                                                         make_transport):
    emu = make_emulator(faults=[{"at": "response.created", "when": "before",
                                 "do": "stall_sending"}])

    def ask_and_wait(transport: Transport, generation: int) -> None:
        ask(transport, generation)
        transport.response_due(generation, True)

    _, peer = make_transport(emu.url, Peer(ask_and_wait), ping_interval=0.2,
                             pong_timeout=1.0, response_timeout=1.0)
    wait_until(lambda: peer.done(2), what="a complete reply on connection 2")
    ending = peer.ending(1)
    assert ending is not None
    assert ending.reason == (f"no event from {emu.url} for 1 s while a response was due: "
                             "the server stalled")


def test_a_quiet_peer_with_no_response_due_is_left_alone(make_emulator, make_transport):
    emu = make_emulator(faults=[{"at": "response.created", "when": "before",
                                 "do": "stall_sending"}])
    transport, peer = make_transport(emu.url, Peer(ask), ping_interval=0.2, pong_timeout=0.5,
                                     response_timeout=0.5)
    emu.wait_for_injected(timeout=TIMEOUT)
    time.sleep(2.0)  # four response timeouts, ten pings: all answered
    assert transport.connected and transport.generation == 1 and not peer.entries(
        "disconnected")


def flood(transport: Transport, generation: int, count: int, size: int = 1 << 20) -> None:
    """Big control events, to fill the socket buffers of a peer that stopped reading."""
    for i in range(count):
        transport.send(events.user_text(f"{i}:" + "x" * size), generation)


def test_stop_returns_and_the_threads_end_while_sends_are_blocked(make_emulator,
                                                                  make_transport):
    emu = make_emulator(faults=[{"at": "response.created", "when": "before",
                                 "do": "stall_reading"}])
    transport, peer = make_transport(emu.url, Peer(ask), send_timeout=60.0,
                                     ping_interval=60.0, pong_timeout=60.0)
    emu.wait_for_injected(timeout=TIMEOUT)
    flood(transport, 1, 40)
    wait_until(lambda: transport.send_blocked_for > 0.5, what="a send blocked on the peer")
    transport.stop(timeout=1.0)
    wait_until(lambda: not transport_threads(), 3.0, "the transport threads to end")
    assert not peer.entries("disconnected")  # a stop is no disconnection to report


def test_a_send_blocked_past_its_deadline_is_declared_dead(make_emulator, make_transport):
    emu = make_emulator(faults=[{"at": "response.created", "when": "before",
                                 "do": "stall_reading"}])
    transport, peer = make_transport(emu.url, Peer(ask), send_timeout=1.0,
                                     ping_interval=60.0, pong_timeout=60.0)
    emu.wait_for_injected(timeout=TIMEOUT)
    flood(transport, 1, 40)
    wait_until(lambda: peer.done(2), what="a complete reply on connection 2")
    ending = peer.ending(1)
    assert ending is not None
    assert ending.reason == f"sending to {emu.url} blocked for 1 s: the server stopped reading"


def test_a_full_control_queue_declares_the_connection_dead(make_emulator, make_transport):
    emu = make_emulator(faults=[{"at": "response.created", "when": "before",
                                 "do": "stall_reading"}])
    transport, peer = make_transport(emu.url, Peer(ask), queue_size=4, send_timeout=60.0,
                                     ping_interval=60.0, pong_timeout=60.0)
    emu.wait_for_injected(timeout=TIMEOUT)
    flood(transport, 1, 40)
    wait_until(lambda: peer.done(2), what="a complete reply on connection 2")
    ending = peer.ending(1)
    assert ending is not None
    assert ending.reason == f"4 events are waiting to go to {emu.url}: the server is not reading"


def test_a_stalled_upgrade_does_not_hold_up_stop(make_emulator, make_transport):
    emu = make_emulator(faults=[{"at": "upgrade", "do": "stall_sending"}])
    transport, _ = make_transport(emu.url, connect_timeout=1.0)
    wait_until(lambda: emu.attempts == 1, what="the upgrade request")
    transport.stop(timeout=0.2)  # returns; the connect gives up at its own timeout
    wait_until(lambda: not transport_threads(), 5.0, "the transport threads to end")
    assert emu.connections == 0


# -- the queue ----------------------------------------------------------------------------------


def test_audio_beyond_the_backlog_drops_the_oldest_while_disconnected(make_emulator,
                                                                      make_transport, caplog):
    caplog.set_level(logging.INFO, "rtd.protocol.transport")
    emu = make_emulator()
    transport, _ = make_transport(emu.url, audio_backlog_ms=200, start=False)
    chunks = [struct.pack("<h", i) * 960 for i in range(10)]  # 40 ms each, told apart
    for chunk in chunks:
        transport.send_audio(chunk)
    assert transport.dropped_audio_ms == 200 and transport.queued_audio_ms == 200
    transport.start()
    wait_until(lambda: emu.sessions and emu.sessions[0].input_audio_bytes == 9600,
               what="the held audio")
    assert emu.sessions[0].input_audio == b"".join(chunks[5:])
    drops = [r for r in caplog.records if "microphone audio" in r.getMessage()]
    assert len(drops) == 1 and "disconnected" in drops[0].getMessage()


def test_control_events_for_a_connection_that_is_gone_are_dropped(make_emulator,
                                                                  make_transport):
    emu = make_emulator(faults=[{"at": "session.created", "do": "drop"}])
    transport, peer = make_transport(emu.url)
    wait_until(lambda: peer.connected(2), what="connection 2")
    transport.send(events.user_text("for the old connection"), 1)
    transport.send(events.user_text("for the new connection"), 2)
    emu.wait_for(lambda e: "for the new connection" in json.dumps(e), timeout=TIMEOUT)
    assert "for the old connection" not in json.dumps(emu.received)


# -- what the server sends ------------------------------------------------------------------


def test_frames_that_are_not_events_are_skipped_and_the_connection_goes_on(
        make_emulator, make_transport, caplog):
    caplog.set_level(logging.INFO, "rtd.protocol.transport")
    junk = [{"text": "not json"}, {"json": [1, 2]}, {"json": {"event_id": "no type"}},
            {"json": {"type": 5}}, {"json": {"type": "x"}, "binary": True},
            {"json": {"type": "huge"}, "pad_to": 10 * 1024 * 1024}]
    emu = make_emulator(faults=[{"at": "session.created", "do": "send", **j} for j in junk])
    transport, peer = make_transport(emu.url, Peer(ask))
    wait_until(lambda: peer.done(1), 20.0, "a complete reply on connection 1")
    assert transport.skipped_frames == {"frame not JSON": 1, "frame not an event": 3,
                                        "frame binary": 1, "frame oversized": 1}
    assert peer.types(1)[:2] == ["session.created", "session.updated"]
    assert "huge" not in peer.types(1) and not peer.entries("disconnected")
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("skipped")]
    assert len(lines) == 4  # one line per kind


def test_a_callback_that_raises_costs_nothing_but_a_log_line(make_emulator, make_transport,
                                                             caplog):
    emu = make_emulator()

    class Fussy(Peer):
        def on_event(self, generation: int, event: dict[str, Any]) -> None:
            super().on_event(generation, event)
            raise RuntimeError("a bug in the session")

    _, peer = make_transport(emu.url, Fussy(ask))
    wait_until(lambda: peer.done(1), what="a complete reply on connection 1")
    failures = [r for r in caplog.records if "on_event callback failed" in r.getMessage()]
    assert len(failures) == 1 and failures[0].exc_info is not None
    assert not peer.entries("disconnected")


def test_the_servers_pings_are_answered():
    """The emulator pings every 20 s; a plain websockets server pings faster here, and closes
    the connection (1011) if a pong is late."""
    latencies: list[float] = []
    done = threading.Event()

    def handler(ws: Any) -> None:
        ws.send(json.dumps({"type": "session.created", "session": {}}))
        done.wait(1.5)  # a dozen pings
        latencies.append(ws.latency)
        ws.close()

    with serve(handler, "127.0.0.1", 0, ping_interval=0.1, ping_timeout=0.5) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        peer = Peer()
        port = server.socket.getsockname()[1]
        transport = Transport(Endpoint(f"ws://127.0.0.1:{port}/"), hello=lambda: [HELLO],
                              on_event=peer.on_event, on_connected=peer.on_connected,
                              on_disconnected=peer.on_disconnected, backoff=FAST)
        transport.start()
        try:
            wait_until(lambda: latencies, what="the server's verdict")
            ending = wait_until(lambda: peer.ending(1), what="the server's close")
        finally:
            transport.stop()
            server.shutdown()
    assert latencies[0] > 0  # a pong came back
    assert "code 1000" in ending.reason  # the handler's own close, not a keepalive timeout


# -- replacing and stopping ---------------------------------------------------------------------


def test_replace_closes_politely_and_reconnects(make_emulator, make_transport):
    emu = make_emulator()
    transport, peer = make_transport(emu.url)
    wait_until(lambda: peer.connected(1), what="connection 1")
    transport.replace("the conversation is out of step")
    wait_until(lambda: peer.connected(2), what="connection 2")
    ending = peer.ending(1)
    assert ending is not None and "the conversation is out of step" in ending.reason
    assert emu.sessions[0].ended.wait(TIMEOUT)
    assert emu.sessions[0].client_close == (1000, "")


def test_stop_closes_politely(make_emulator, make_transport):
    emu = make_emulator()
    transport, peer = make_transport(emu.url)
    wait_until(lambda: "session.created" in peer.types(1), what="session.created")
    transport.stop()
    assert not transport.connected
    assert emu.sessions[0].ended.wait(TIMEOUT)
    assert emu.sessions[0].client_close == (1000, "")
    wait_until(lambda: not transport_threads(), 3.0, "the transport threads to end")


# -- the frame reader, byte by byte ---------------------------------------------------------------


def frame(opcode: int, payload: bytes, fin: bool = True, mask: bytes = b"") -> bytes:
    head = bytes([(0x80 if fin else 0) | opcode])
    size = len(payload)
    bit = 0x80 if mask else 0
    if size < 126:
        head += bytes([bit | size])
    elif size < 1 << 16:
        head += bytes([bit | 126]) + struct.pack("!H", size)
    else:
        head += bytes([bit | 127]) + struct.pack("!Q", size)
    if mask:
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return head + mask + payload


def read_all(data: bytes, step: int, limit: int = 1000) -> list[tuple[int, bytes | None, Any]]:
    frames = _Frames(limit)
    out = []
    for start in range(0, len(data), step):
        frames.feed(data[start:start + step])
        while (got := frames.next()) is not None:
            out.append(got)
    return out


@pytest.mark.parametrize("step", [1, 3, 7, 4096])
def test_the_frame_reader_resumes_at_any_byte(step):
    wire = (frame(1, b'{"type":"a"}') + frame(1, b'{"type":', fin=False)
            + frame(9, b"ping") + frame(0, b'"b"}') + frame(2, b"\x00" * 300)
            + frame(1, b"x" * 2000) + frame(1, b"masked", mask=b"\x01\x02\x03\x04")
            + frame(1, b"y" * 600, fin=False) + frame(0, b"y" * 600) + frame(1, b"after")
            + frame(8, struct.pack("!H", 2999) + b"bye"))
    assert read_all(wire, step) == [
        (1, b'{"type":"a"}', None), (9, b"ping", None), (1, b'{"type":"b"}', None),
        (2, b"\x00" * 300, None), (1, None, "oversized:2000"), (1, b"masked", None),
        (1, None, "oversized:1200"), (1, b"after", None),
        (8, struct.pack("!H", 2999) + b"bye", None)]


def test_the_frame_reader_skips_what_breaks_the_rules():
    wire = (frame(0, b"stray continuation") + frame(3, b"reserved opcode")
            + bytes([0xC1, 2]) + b"{}"  # RSV1 without an extension
            + frame(1, b"first half", fin=False) + frame(1, b"interrupting")
            + frame(1, b"ok"))
    assert read_all(wire, 5) == [
        (0, None, "malformed"), (3, None, "malformed"), (1, None, "malformed"),
        (1, None, "malformed"), (1, b"interrupting", None), (1, b"ok", None)]

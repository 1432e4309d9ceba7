"""The control actor on a real Unix socket: requests in, messages on the bus, status out."""

from __future__ import annotations

import json
import os
import socket
import stat
from pathlib import Path

import pykka
import pytest
from rtdproc import wait_until

from rtd.actors.control import STATUS_KEYS, ControlActor, ControlError, request
from rtd.messages import (
    CancelTurn,
    ConnectionState,
    EndTurn,
    Sleep,
    StartTurn,
    StateEvent,
    StatusReport,
    Wake,
)
from rtd.supervisor import Bus, Ping


class Control:
    def __init__(self, path: Path, mode: str = "0600") -> None:
        self.path = path
        self.bus = Bus()
        self.seen: list[object] = []
        self.bus.observe(self.seen.append)
        self.ref = ControlActor.start(self.bus, lambda n, e: None, str(path), mode)
        self.bus.subscribe("control", ControlActor.receives)
        self.bus.attach("control", self.ref)
        assert self.ref.ask(Ping(), timeout=5) is None

    def of(self, kind: type) -> list:
        return [m for m in self.seen if isinstance(m, kind)]

    def stop(self) -> None:
        self.ref.stop(timeout=5)


@pytest.fixture(autouse=True)
def _stop_actors():
    yield
    pykka.ActorRegistry.stop_all()


@pytest.fixture
def control(tmp_path):
    c = Control(tmp_path / "run" / "control.sock")
    yield c
    c.stop()


def raw(path: Path, payload: bytes) -> dict:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(5)
        sock.connect(str(path))
        sock.sendall(payload)
        return json.loads(sock.makefile("rb").readline())


def test_the_socket_is_owner_only_and_gone_after_stop(tmp_path):
    c = Control(tmp_path / "run" / "control.sock")
    assert stat.S_IMODE(c.path.stat().st_mode) == 0o600
    assert stat.S_ISSOCK(c.path.stat().st_mode)
    c.stop()
    assert not c.path.exists()


@pytest.mark.parametrize(("fields", "expected"), [
    ({"command": "wake"}, Wake("control")),
    ({"command": "sleep"}, Sleep("control")),
    ({"command": "talk", "action": "start"}, StartTurn()),
    ({"command": "talk", "action": "stop"}, EndTurn()),
    ({"command": "talk", "action": "cancel"}, CancelTurn()),
])
def test_commands_publish_what_a_sender_would(control, fields, expected):
    command = fields.pop("command")
    assert request(control.path, command, **fields) == {"ok": True}
    assert wait_until(lambda: expected in control.seen, timeout=5)


def test_status_merges_every_report_with_state_and_connection(control):
    before = request(control.path, "status")["status"]
    assert all(before[key] is None for key in STATUS_KEYS)  # nothing reported yet: unknown
    assert before["pid"] == os.getpid()
    control.bus.publish(StatusReport("session", {"turns": 3, "session_age_s": 12.5,
                                                 "expires_in_s": 3587.5}))
    control.bus.publish(StatusReport("transport", {"dropped_audio_ms": 40}))
    control.bus.publish(StatusReport("session", {"turns": 4, "session_age_s": 13.0,
                                                 "expires_in_s": 3587.0}))
    control.bus.publish(StateEvent("speaking", "reply started", previous="thinking", muted=True))
    control.bus.publish(ConnectionState(True, "ws://127.0.0.1:1/v1/realtime?model=m"))

    def current() -> dict:
        return request(control.path, "status")["status"]

    assert wait_until(lambda: current()["connected"] is True, timeout=5)
    status = current()
    assert status["turns"] == 4  # the latest report of a source replaces its earlier one
    assert status["dropped_audio_ms"] == 40
    assert status["state"] == "speaking"
    assert status["state_detail"] == "reply started"
    assert status["muted"] is True
    assert status["connection"] == "ws://127.0.0.1:1/v1/realtime?model=m"


@pytest.mark.parametrize(("payload", "error"), [
    (b"status\n", "one JSON object per line"),
    (b'["status"]\n', 'a JSON object with a "command"'),
    (b'{"command": "dance"}\n', "unknown command 'dance'; known: status, wake, sleep, talk"),
    (b'{"command": "talk", "action": "shout"}\n', "talk needs an action: start, stop, cancel"),
])
def test_bad_requests_get_one_clear_error_and_the_socket_goes_on(control, payload, error):
    reply = raw(control.path, payload)
    assert reply["ok"] is False
    assert error in reply["error"]
    assert request(control.path, "status")["ok"] is True


def test_the_client_says_when_rtd_is_not_running(tmp_path):
    with pytest.raises(ControlError, match=r"rtd is not running \(nothing answers on"):
        request(tmp_path / "absent.sock", "status")


def test_a_second_daemon_leaves_the_first_ones_socket_alone(control, tmp_path, caplog):
    second = Control(control.path)
    assert "another rtd answers on" in caplog.text
    second.stop()
    assert request(control.path, "status")["status"]["pid"] == os.getpid()  # still answered


def test_a_path_it_cannot_use_costs_a_warning_not_the_daemon(tmp_path, caplog):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    c = Control(blocker / "control.sock")
    assert "control.path:" in caplog.text
    assert "rtd status, wake, sleep and talk will not reach this daemon" in caplog.text
    assert c.ref.is_alive()
    c.stop()


def test_a_stale_socket_file_is_replaced(tmp_path):
    path = tmp_path / "control.sock"
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))
    stale.close()  # the file stays, nobody listens: a crashed run's leftover
    c = Control(path)
    assert request(path, "status")["ok"] is True
    c.stop()

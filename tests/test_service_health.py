"""The watchdog's health model with real actors, and the environment checks of the built-in
senders and of secrets on disk."""

from __future__ import annotations

import logging
import os
import socket
import threading
from types import SimpleNamespace

import pykka
import pytest
from rtdproc import wait_until

from rtd import config as cfg
from rtd.actors.sender import SenderActor
from rtd.builtin.senders import SocketSender, SocketSettings, stdin_problem
from rtd.messages import ConnectionState
from rtd.service import Health
from rtd.supervisor import Bus, Child, Ping, RtdActor, Supervisor


class Stuck:
    """Tell it to an actor to make it hang until released."""

    def __init__(self) -> None:
        self.release = threading.Event()


class Worker(RtdActor):
    def handle(self, message):
        if isinstance(message, Stuck):
            message.release.wait(30)


@pytest.fixture(autouse=True)
def _no_leftover_actors():
    yield
    pykka.ActorRegistry.stop_all()


def _daemon():
    bus = Bus()
    sup = Supervisor([Child("core", lambda b, c: Worker.start(b, c)),
                      Child("receivers.plugin", lambda b, c: Worker.start(b, c),
                            critical=False)], bus)
    sup.start()
    return SimpleNamespace(bus=bus, supervisor=sup, input=None, output=None)


def test_an_actor_that_stops_answering_makes_the_daemon_unhealthy(caplog):
    caplog.set_level(logging.WARNING, "rtd")
    daemon = _daemon()
    health = Health(daemon)
    assert health.problems(now=0.0) == []
    refs = {c.name: c.ref for c in daemon.supervisor.children}
    for ref in refs.values():  # answered once this returns: the pings were sent before
        ref.ask(Ping(), timeout=5)
    core, plugin = Stuck(), Stuck()
    refs["core"].tell(core)
    refs["receivers.plugin"].tell(plugin)
    assert health.problems(now=2.0) == []  # new pings, queued behind the stuck messages
    assert health.problems(now=4.0) == []  # not late yet
    problems = health.problems(now=2.0 + 6.0)
    assert problems == ["core has not answered for 6 s"]
    # a plugin component never stops the watchdog; it is named in the log, once
    assert health.problems(now=2.0 + 7.0) == ["core has not answered for 7 s"]
    assert caplog.text.count("receivers.plugin has not answered a health check") == 1
    core.release.set()
    plugin.release.set()
    for ref in refs.values():
        ref.ask(Ping(), timeout=5)
    assert health.problems(now=20.0) == []
    daemon.supervisor.stop()


def test_a_core_actor_down_for_long_is_a_problem():
    daemon = _daemon()
    health = Health(daemon)
    core = daemon.supervisor.children[0]
    daemon.supervisor._stop_child(core, 2.0)  # as between a crash and its restart
    assert health.problems(now=100.0) == []
    assert health.problems(now=105.0) == []
    assert health.problems(now=111.0) == ["core has been down for 11 s"]
    daemon.supervisor.stop()


def test_status_names_the_connection_and_the_state():
    daemon = _daemon()
    health = Health(daemon)
    assert health.status() == "connecting"
    daemon.bus.publish(ConnectionState(False, "cannot connect to ws://x: refused; retrying"))
    assert health.status() == "reconnecting (cannot connect to ws://x: refused; retrying)"
    daemon.bus.publish(ConnectionState(False, "on demand: waiting for a wake", expected=True))
    assert health.status() == "offline (on demand: waiting for a wake)"  # asked for: no retry
    daemon.bus.publish(ConnectionState(True, "ws://x"))
    from rtd.components import StateEvent

    daemon.bus.publish(StateEvent("listening"))
    assert health.status() == "connected to ws://x; listening"
    daemon.output = SimpleNamespace(waiting_for="audio.output.device: no output device "
                                    "matches 'USB'. Output devices: 0: 'x'.",
                                    health_problem=lambda: None)
    assert health.status().endswith("; speaker not available, looking for it "
                                    "(audio.output.device: no output device matches 'USB')")
    daemon.supervisor.stop()


def test_stdin_problem_knows_terminals_pipes_files_and_dev_null(tmp_path):
    read, write = os.pipe()
    with os.fdopen(read) as pipe:
        assert stdin_problem(pipe) is None
    os.close(write)
    with open(os.devnull) as null:
        assert "is /dev/null (as under systemd)" in stdin_problem(null)
    path = tmp_path / "f"
    path.write_text("x")
    with path.open() as regular:
        assert "is a regular file" in stdin_problem(regular)
    closed = path.open()
    closed.close()
    assert stdin_problem(closed) == "senders.stdin: standard input is closed"


def test_socket_mode_is_never_more_than_owner_and_group(tmp_path, caplog):
    caplog.set_level(logging.WARNING)
    path = tmp_path / "rtd.sock"
    bus = Bus()
    ref = SenderActor.start(bus, lambda n, e: None,
                            SocketSender(SocketSettings(path=str(path), mode="0666")))
    ref.ask(Ping(), timeout=5)
    assert wait_until(path.exists)
    assert oct(path.stat().st_mode & 0o777) == "0o660"
    assert "senders.socket.mode: 0666 would let every user on this machine talk to rtd; " \
           "using 0660" in caplog.text
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(5)
        s.connect(str(path))
    ref.stop(timeout=5)


def test_secrets_readable_by_every_user_are_warned_about(tmp_path):
    conf = tmp_path / "rtd.toml"
    conf.write_text('[provider]\nheaders = { "x-portkey-api-key" = "pk-live-9" }\n')
    key = tmp_path / "key"
    key.write_text("sk-from-a-file\n")
    conf.chmod(0o644)
    key.chmod(0o644)
    config = cfg.parse({**cfg.read_toml(conf), "provider": {
        **cfg.read_toml(conf)["provider"], "api_key_file": str(key)}}, conf)
    warnings = cfg.exposed_secrets(config)
    assert len(warnings) == 2
    assert warnings[0].startswith(f"{conf}: every user of this machine can read it (mode 0644) "
                                  "and it holds provider.headers; ")
    assert warnings[1].startswith(f"{key}: every user of this machine can read it (mode 0644) "
                                  "and it holds the API key")
    assert not any("pk-live-9" in w or "sk-from-a-file" in w for w in warnings)
    conf.chmod(0o640)
    key.chmod(0o600)
    assert cfg.exposed_secrets(config) == []
    plain = tmp_path / "plain.toml"
    plain.write_text("[log]\nlevel = 'info'\n")
    plain.chmod(0o644)  # readable, but no secret in it
    assert cfg.exposed_secrets(cfg.parse(cfg.read_toml(plain), plain, require_key=False)) == []

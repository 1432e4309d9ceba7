"""Reloading a running daemon: what changed restarts, the rest keeps running, the session is
told its new settings on the open connection."""

from __future__ import annotations

import dataclasses
import threading

import pykka
import pytest
from rtdproc import wait_until

from rtd import config as cfg
from rtd.daemon import Daemon
from rtd.emulator import DEMO_QUESTION_WAV, Emulator
from rtd.messages import ConnectionState
from rtd.supervisor import Bus, Child, RtdActor, Supervisor


class Recorder(RtdActor):
    def __init__(self, bus, on_crash, name, journal, fail=False):
        super().__init__(bus, on_crash)
        self.name, self.journal, self.fail = name, journal, fail

    def setup(self):
        if self.fail:
            raise OSError("busy")
        self.journal.append(("start", self.name))

    def release(self):
        self.journal.append(("stop", self.name))


def child(name, journal, critical=True, fail=False):
    return Child(name, lambda bus, crash: Recorder.start(bus, crash, name, journal, fail),
                 critical=critical)


@pytest.fixture(autouse=True)
def _no_leftover_actors():
    yield
    pykka.ActorRegistry.stop_all()


def _run(sup: Supervisor) -> threading.Thread:
    thread = threading.Thread(target=sup.run, daemon=True)
    thread.start()
    return thread


def test_replace_stops_restarts_and_starts_in_order():
    journal: list[tuple[str, str]] = []
    sup = Supervisor([child("a", journal), child("b", journal), child("c", journal)], Bus())
    sup.start()
    kept = sup.children[0].ref
    _run(sup)
    journal.clear()
    new = [child("a", journal), child("b", journal), child("d", journal)]
    assert sup.call(lambda: sup.replace(new, restart=["b"]), timeout=10)
    # c (removed) and b (restarted) stop in reverse start order, then b and d start in order
    assert journal == [("stop", "c"), ("stop", "b"), ("start", "b"), ("start", "d")]
    assert [c.name for c in sup.children] == ["a", "b", "d"]
    assert sup.children[0].ref is kept
    sup.request_stop()
    sup.stop()
    assert journal[-3:] == [("stop", "d"), ("stop", "b"), ("stop", "a")]


def test_a_component_that_fails_to_start_in_a_reload_is_retried_later():
    journal: list[tuple[str, str]] = []
    sup = Supervisor([child("a", journal)], Bus())
    sup.start()
    _run(sup)
    new = [child("a", journal), child("plugin", journal, critical=False, fail=True)]
    assert sup.call(lambda: sup.replace(new), timeout=10)
    assert [c.name for c in sup.children] == ["a", "plugin"]
    assert sup.children[1].ref is None  # down, with a restart scheduled
    sup.request_stop()
    sup.stop()


def _config(url: str, tmp_path, **session) -> cfg.Config:
    table = {
        "provider": {"name": "custom", "url": url},
        "session": {"instructions": "Be terse.", **session},
        "audio": {"input": {"backend": "file", "path": str(DEMO_QUESTION_WAV)},
                  "output": {"backend": "file", "path": str(tmp_path / "out.wav")}},
        "tools": {"clock": {}},
    }
    return cfg.parse(table, None, require_key=False)


def test_daemon_reload_sends_session_settings_and_restarts_only_what_changed(tmp_path):
    with Emulator(voice_engine="tones") as emu:
        config = _config(emu.url, tmp_path)
        daemon = Daemon(config)
        connected = threading.Event()
        daemon.bus.observe(lambda m: isinstance(m, ConnectionState) and m.connected
                           and connected.set())
        daemon.start()
        runner = threading.Thread(target=daemon.run, daemon=True)
        runner.start()
        try:
            assert connected.wait(10)
            refs = {c.name: c.ref for c in daemon.supervisor.children}

            changed = dataclasses.replace(
                config, session=dataclasses.replace(config.session, instructions="Be kind."),
                components=())  # the clock tool goes: the tools actor restarts, tools are updated
            changes = daemon.reload(changed)
            assert changes == ["restarted tools", "sent the new session settings"]
            now = {c.name: c.ref for c in daemon.supervisor.children}
            assert now["session"] is refs["session"] and now["audio_input"] is refs["audio_input"]
            assert now["tools"] is not refs["tools"]
            update = emu.wait_for(lambda e: e["type"] == "session.update"
                                  and e["session"]["instructions"] == "Be kind.", timeout=10)
            assert update["session"]["tools"] == []
            assert emu.connections == 1

            assert daemon.reload(changed) == []  # the same again: nothing to do

            voice = dataclasses.replace(
                changed, session=dataclasses.replace(changed.session, voice="cedar"))
            assert daemon.reload(voice) == ["restarted session"]  # a new voice: a new session
            assert wait_until(lambda: emu.connections == 2, timeout=10)
            first = emu.wait_for(lambda e: e["type"] == "session.update"
                                 and e["session"]["audio"]["output"]["voice"] == "cedar",
                                 timeout=10)
            assert first["session"]["instructions"] == "Be kind."
        finally:
            daemon.supervisor.request_stop()
            runner.join(timeout=5)
            daemon.stop()

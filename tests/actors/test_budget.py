"""The daily budget of connected minutes: its ledger alone, then the session actor keeping to it.

The ledger gets a fake clock (days pass in a test); the actor runs with its real transport
against the emulator and a budget of a second or two.
"""

from __future__ import annotations

import datetime as dt
import json
import logging

import pykka
import pytest
from rtdproc import wait_until

from rtd.actors.budget import FILE_NAME, DailyBudget, state_directory
from rtd.actors.session import SessionActor, SessionPolicy, TransportSettings
from rtd.emulator import Emulator
from rtd.messages import ConnectionState, UserText, Wake
from rtd.protocol.providers import Endpoint
from rtd.supervisor import Bus, Ping

UTC = dt.timezone.utc
UPDATE = {"type": "session.update", "session": {
    "type": "realtime", "output_modalities": ["audio"],
    "audio": {"input": {"format": {"type": "audio/pcm", "rate": 24000}, "turn_detection": None},
              "output": {"format": {"type": "audio/pcm", "rate": 24000}, "voice": "marin"}}}}


class Clock:
    def __init__(self, when: dt.datetime) -> None:
        self.when = when

    def __call__(self) -> dt.datetime:
        return self.when


# -- the ledger ----------------------------------------------------------------------------------


def test_minutes_survive_a_restart_and_a_new_day_starts_from_zero(tmp_path):
    clock = Clock(dt.datetime(2026, 12, 1, 23, 0, tzinfo=UTC))
    budget = DailyBudget(10, tmp_path, now=clock)
    budget.add(240)
    budget.save()
    data = json.loads((tmp_path / FILE_NAME).read_text())
    assert data == {"day": "2026-12-01", "seconds": 240.0}
    again = DailyBudget(10, tmp_path, now=clock)  # a restart
    assert again.minutes_today == 4 and again.seconds_left() == 360
    again.add(360)
    assert again.exhausted
    assert again.until_midnight() == 3600
    clock.when = dt.datetime(2026, 12, 2, 0, 0, 1, tzinfo=UTC)
    assert not again.exhausted and again.minutes_today == 0
    assert not [p for p in tmp_path.iterdir() if p.name != FILE_NAME]  # no temporary left


def test_a_corrupt_file_is_one_warning_and_counts_as_nothing_used(tmp_path, caplog):
    (tmp_path / FILE_NAME).write_text("{not json")
    with caplog.at_level(logging.WARNING):
        budget = DailyBudget(5, tmp_path)
    assert budget.minutes_today == 0
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and FILE_NAME in lines[0] and "session.state_dir" in lines[0]
    budget.add(1)
    budget.save()
    assert json.loads((tmp_path / FILE_NAME).read_text())["seconds"] == 1.0


def test_an_unwritable_directory_is_one_warning(tmp_path, caplog):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with caplog.at_level(logging.WARNING):
        budget = DailyBudget(5, blocker / "sub")
        for _ in range(3):
            budget.add(31)
    assert len(caplog.records) == 1
    assert budget.minutes_today == pytest.approx(93 / 60)


def test_without_a_limit_nothing_is_written(tmp_path):
    budget = DailyBudget(0, tmp_path)
    budget.add(100)
    budget.save()
    assert not budget.exhausted and budget.seconds_left() is None
    assert budget.minutes_today == pytest.approx(100 / 60)
    assert list(tmp_path.iterdir()) == []


def test_the_state_directory():
    assert str(state_directory("/x", {"STATE_DIRECTORY": "/y"})) == "/x"
    assert str(state_directory("", {"STATE_DIRECTORY": "/var/lib/rtd:/other"})) == "/var/lib/rtd"
    assert str(state_directory("", {"XDG_STATE_HOME": "/s", "HOME": "/h"})) == "/s/rtd"
    assert str(state_directory("", {"HOME": "/h"})) == "/h/.local/state/rtd"


# -- the session keeping to it -------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _stop_actors():
    yield
    pykka.ActorRegistry.stop_all()


def start(emu: Emulator, tmp_path, **policy: object) -> tuple[pykka.ActorRef, list[object]]:
    bus = Bus()
    seen: list[object] = []
    bus.observe(seen.append)
    ref = SessionActor.start(bus, lambda n, e: None, Endpoint(emu.url), UPDATE,
                             transport=TransportSettings(ping_interval=0.5, pong_timeout=1.0),
                             policy=SessionPolicy(state_dir=tmp_path, **policy))
    assert ref.ask(Ping(), timeout=5) is None
    return ref, seen


def offline(seen: list[object]) -> list[ConnectionState]:
    return [m for m in seen if isinstance(m, ConnectionState) and m.expected
            and not m.connected and "max_minutes_per_day" in m.detail]


def test_past_the_daily_minutes_rtd_closes_and_stays_offline_across_a_restart(tmp_path,
                                                                              caplog):
    with Emulator(voice_engine="tones") as emu:
        with caplog.at_level(logging.INFO, logger="rtd"):
            ref, seen = start(emu, tmp_path, max_minutes_per_day=0.02)  # 1.2 s
            assert wait_until(lambda: offline(seen), timeout=15)
        assert emu.sessions[0].ended.wait(10)
        assert emu.sessions[0].client_close is not None
        assert emu.sessions[0].client_close[0] == 1000
        said = [r.getMessage() for r in caplog.records if "is used up" in r.getMessage()]
        assert len(said) == 1 and "midnight" in said[0]  # one line says so
        # an expected close: the state actor shows idle, not reconnecting
        assert [m.expected for m in seen if isinstance(m, ConnectionState)][-1] is True
        assert json.loads((tmp_path / FILE_NAME).read_text())["seconds"] >= 1.2

        ref.tell(Wake("control"))  # refused, and says why
        ref.tell(UserText("Hello?"))
        assert ref.ask(Ping(), timeout=5) is None
        assert len(offline(seen)) >= 2
        ref.stop()

        again, seen2 = start(emu, tmp_path, max_minutes_per_day=0.02)  # a restart
        assert again.ask(Ping(), timeout=5) is None
        assert offline(seen2)
        assert emu.attempts == 1 and len(emu.sessions) == 1  # no new connection today

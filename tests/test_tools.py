"""Tools turn every failure into an output the model can read."""

from __future__ import annotations

import datetime as dt
import json

from rtd.tools import CLOCK, ClockSettings, Tool


def test_clock_reports_time_in_the_configured_zone():
    out = json.loads(CLOCK.run(ClockSettings(timezone="Asia/Tokyo"), "{}"))
    now = dt.datetime.fromisoformat(out["iso"])
    assert now.utcoffset() == dt.timedelta(hours=9)
    assert out["timezone"] == "JST"
    assert out["time"] == now.strftime("%H:%M")
    assert out["date"] == f"{now:%A} {now.day} {now:%B %Y}"
    assert abs((now - dt.datetime.now(dt.timezone.utc)).total_seconds()) < 120


def test_clock_with_unknown_zone_says_so():
    out = json.loads(CLOCK.run(ClockSettings(timezone="Mars/Olympus"), ""))
    assert "Mars/Olympus" in out["error"]


def test_failures_become_outputs():
    def boom(settings, args):
        raise RuntimeError("disk on fire")

    t = Tool("t", "d", {"type": "object"}, boom)
    assert json.loads(t.run(None, "{}")) == {"error": "RuntimeError: disk on fire"}
    assert "not valid JSON" in json.loads(t.run(None, "{oops"))["error"]
    assert json.loads(t.run(None, "[1]")) == {"error": "arguments must be a JSON object"}
    odd = Tool("odd", "d", {"type": "object"}, lambda s, a: {"x": object()})
    assert "not JSON" in json.loads(odd.run(None, "{}"))["error"]
    echo = Tool("echo", "d", {"type": "object"}, lambda s, a: f"got {a['v']}")
    assert echo.run(None, '{"v": 3}') == "got 3"

"""The notify protocol against a real datagram socket, as systemd's end receives it."""

from __future__ import annotations

import logging
import os
import time
import uuid

import pytest
from notifysock import NotifySocket

from rtd.notify import Notifier, monotonic_usec


def test_fields_arrive_as_one_datagram_on_a_path_socket(tmp_path):
    sock = NotifySocket(tmp_path / "notify")
    try:
        n = Notifier(sock.address)
        assert n.ready("connected") and n.watchdog() and n.reloading() and n.stopping("bye")
        got = sock.wait_for(lambda ms: len(ms) == 4, timeout=5, what="four notifications")
        assert [m.fields for m in got[:2]] == [{"READY": "1", "STATUS": "connected"},
                                               {"WATCHDOG": "1"}]
        assert got[2].fields["RELOADING"] == "1" and got[2].fields["MONOTONIC_USEC"].isdigit()
        assert got[3].fields == {"STOPPING": "1", "STATUS": "bye"}
        assert all(m.pid == os.getpid() for m in got)
    finally:
        sock.close()


def test_abstract_namespace_address():
    name = f"rtd-notify-{uuid.uuid4().hex}"
    sock = NotifySocket(abstract=name)
    try:
        assert sock.address == f"@{name}"
        assert Notifier(sock.address).status("a status\nwith a newline")
        got = sock.wait_for(lambda ms: bool(ms), timeout=5)
        assert got[0].fields == {"STATUS": "a status with a newline"}
    finally:
        sock.close()


def test_from_environment_takes_the_variables_away():
    env = {"NOTIFY_SOCKET": "@x", "WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}
    n = Notifier.from_environment(env)
    assert env == {}  # children of the daemon cannot speak for it
    assert (n.address, n.watchdog_interval) == ("@x", 15.0)
    other = Notifier.from_environment({"NOTIFY_SOCKET": "/run/x", "WATCHDOG_USEC": "30000000",
                                       "WATCHDOG_PID": "1"})
    assert other.enabled and other.watchdog_interval is None  # meant for another process
    kept = {"NOTIFY_SOCKET": "/run/x"}
    Notifier.from_environment(kept, unset=False)
    assert kept == {"NOTIFY_SOCKET": "/run/x"}


def test_without_a_manager_nothing_is_sent():
    n = Notifier.from_environment({})
    assert not n.enabled and n.watchdog_interval is None
    assert n.ready() is False and n.watchdog() is False


def test_a_manager_that_went_away_is_logged_once(tmp_path, caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.WARNING, "rtd.notify")
    n = Notifier(str(tmp_path / "nobody-listens"))
    assert n.watchdog() is False and n.watchdog() is False
    assert len(caplog.records) == 1
    assert "cannot notify the service manager" in caplog.text


def test_monotonic_usec_is_the_monotonic_clock():
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    assert before <= monotonic_usec() <= time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000

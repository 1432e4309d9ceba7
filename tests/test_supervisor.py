"""Supervisor: order of start and stop, routing by type, one-for-one restarts with a limit."""

from __future__ import annotations

import signal
import threading
from dataclasses import dataclass

import pykka
import pytest
from rtdproc import wait_until

from rtd.exitcodes import EX_SOFTWARE
from rtd.messages import Fatal
from rtd.supervisor import Bus, Child, RtdActor, StartupError, Supervisor


@dataclass(frozen=True)
class Note:
    text: str


@dataclass(frozen=True)
class Crash:
    pass


class Recorder(RtdActor):
    """A real actor recording what it lived through into a shared journal."""

    def __init__(self, bus, on_crash, name, journal, fail_start=False):
        super().__init__(bus, on_crash)
        self.name = name
        self.journal = journal
        self.fail_start = fail_start

    def setup(self):
        if self.fail_start:
            raise OSError("device busy")
        self.journal.append(("start", self.name))

    def handle(self, message):
        if isinstance(message, Crash):
            raise RuntimeError("bug")
        if isinstance(message, Note):
            self.journal.append((self.name, message.text))

    def release(self):
        self.journal.append(("release", self.name))


def child(name, journal, receives=(Note,), **kw):
    return Child(name, lambda bus, crash: Recorder.start(bus, crash, name, journal, **kw),
                 receives)


@pytest.fixture(autouse=True)
def _no_leftover_actors():
    yield
    pykka.ActorRegistry.stop_all()


def test_starts_in_order_routes_and_stops_in_reverse():
    journal: list = []
    sup = Supervisor([child("a", journal), child("b", journal, receives=()),
                      child("c", journal)])
    sup.start()
    assert journal == [("start", "a"), ("start", "b"), ("start", "c")]
    sup.bus.publish(Note("hello"))
    for c in sup.children:  # wait for delivery with the health-check ask
        c.ref.ask(Note("sync"), timeout=5)
    assert ("a", "hello") in journal and ("c", "hello") in journal
    assert ("b", "hello") not in journal
    sup.stop()
    assert [e for e in journal if e[0] == "release"] == [
        ("release", "c"), ("release", "b"), ("release", "a")]


def test_startup_failure_stops_what_started_and_names_the_actor():
    journal: list = []
    sup = Supervisor([child("a", journal), child("mic", journal, fail_start=True),
                      child("c", journal)])
    with pytest.raises(StartupError, match="mic: device busy"):
        sup.start()
    assert ("release", "a") in journal
    assert ("start", "c") not in journal


def test_crashed_actor_is_restarted_and_keeps_receiving():
    journal: list = []
    sup = Supervisor([child("a", journal, receives=(Note, Crash))], restart_first=0.05)
    sup.start()
    first = sup.children[0].ref
    sup.bus.publish(Crash())
    # run() handles the crash; a Fatal afterwards makes it return
    result: list[int] = []
    runner = threading.Thread(target=lambda: result.append(sup.run()), daemon=True)
    runner.start()
    # the restarted actor receives from the bus once the supervisor re-attached it
    assert wait_until(lambda: sup.children[0].ref not in (None, first)), journal
    assert journal.count(("start", "a")) == 2
    assert ("release", "a") in journal  # the crashed one freed its resources
    sup.bus.publish(Note("after"))
    assert wait_until(lambda: ("a", "after") in journal)
    sup.bus.publish(Fatal("enough", 3))
    runner.join(timeout=5)
    assert result == [3]
    sup.stop()


def test_restarts_are_limited():
    journal: list = []
    sup = Supervisor([child("a", journal, receives=(Crash,))], max_restarts=2,
                     restart_first=0.05)
    sup.start()
    result: list[int] = []
    runner = threading.Thread(target=lambda: result.append(sup.run()), daemon=True)
    runner.start()
    refs = []
    for n in range(3):
        assert wait_until(lambda: sup.children[0].ref not in (None, *refs))
        refs.append(sup.children[0].ref)
        assert journal.count(("start", "a")) == n + 1
        sup.bus.publish(Crash())
    runner.join(timeout=5)
    assert result == [EX_SOFTWARE]
    sup.stop()


def test_bus_skips_names_that_are_down():
    bus = Bus()
    bus.subscribe("x", [Note])
    bus.publish(Note("nobody home"))  # no actor attached: dropped, no error
    seen = []
    bus.observe(seen.append)
    bus.publish(Note("seen"))
    assert seen == [Note("seen")]



def test_request_stop_ends_run_with_zero_quietly(caplog):
    journal: list = []
    sup = Supervisor([child("a", journal)])
    sup.start()
    sup.request_stop()
    assert sup.run() == 0
    assert "ERROR" not in caplog.text
    sup.stop()


def test_a_core_actor_failing_its_restart_is_retried_with_backoff(caplog):
    """A crash, then a restart whose start-up fails (the device is still busy): the daemon
    keeps trying with a growing delay instead of exiting at once, and logs one line each."""
    journal: list = []
    starts = [0]

    def start(bus, crash):
        starts[0] += 1
        return Recorder.start(bus, crash, "a", journal, fail_start=starts[0] == 2)

    sup = Supervisor([Child("a", start, (Crash,))], restart_first=0.05)
    sup.start()
    result: list[int] = []
    runner = threading.Thread(target=lambda: result.append(sup.run()), daemon=True)
    runner.start()
    sup.bus.publish(Crash())
    assert wait_until(lambda: starts[0] == 3 and sup.children[0].ref is not None)
    assert result == [] and runner.is_alive()
    assert "a crashed: RuntimeError: bug; restarting it in 0 s" in caplog.text
    assert "a crashed again (2 crashes since start): OSError: device busy; restarting it in " \
           "0 s" in caplog.text
    assert caplog.text.count("Traceback") == 1
    sup.bus.publish(Fatal("enough", 3))
    runner.join(timeout=5)
    assert result == [3]
    sup.stop()


class SlowStart(Recorder):
    """Takes its time in setup(), as an actor opening a device does."""

    def setup(self):
        self.journal.append(("setting up", self.name))
        threading.Event().wait(0.5)
        super().setup()


def test_ctrl_c_while_an_actor_starts_stops_that_actor_too():
    """A KeyboardInterrupt in the start-up ask must not leave the actor's (non-daemon) thread
    behind: the process would never exit after Ctrl-C."""
    journal: list = []
    sup = Supervisor([child("a", journal),
                      Child("slow", lambda bus, crash: SlowStart.start(bus, crash, "slow",
                                                                       journal), (Note,))])
    main = threading.main_thread().ident

    def interrupt():
        wait_until(lambda: ("setting up", "slow") in journal)
        signal.pthread_kill(main, signal.SIGINT)  # a real signal: it wakes the waiting ask

    threading.Thread(target=interrupt).start()
    with pytest.raises(KeyboardInterrupt):
        sup.start()
    sup.stop()
    assert wait_until(lambda: ("release", "slow") in journal)
    assert ("release", "a") in journal
    assert not [a for a in pykka.ActorRegistry.get_all() if a.is_alive()]


def test_ctrl_c_inside_pykkas_start_still_stops_the_new_actor():
    """The interrupt may land while pykka's start() waits for the new thread, after the actor
    exists and before its ref reaches the supervisor: that actor must stop too."""
    journal: list = []

    def start(bus, crash):
        Recorder.start(bus, crash, "lost", journal)  # its ref never comes back
        raise KeyboardInterrupt

    sup = Supervisor([child("a", journal), Child("lost", start, (Note,))])
    with pytest.raises(KeyboardInterrupt):
        sup.start()
    sup.stop()
    assert ("release", "lost") in journal and ("release", "a") in journal
    assert not [a for a in pykka.ActorRegistry.get_all() if a.is_alive()]

"""rtd-leds against a folder laid out like /sys/class/leds, and in the real `rtd` process.

The fake LED folder holds what the kernel's does: ``brightness``, ``max_brightness`` and a
``trigger`` listing the triggers with the active one in brackets. The kernel would rewrite
``trigger`` to its list form and make ``delay_on`` / ``delay_off`` appear for the timer
trigger; here they are plain files, so the test reads back exactly what was written.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
from rtdproc import wait_until

from rtd import config as cfg
from rtd import plugins
from rtd.components import StateEvent


@pytest.fixture(scope="module")
def leds():
    import rtd_leds

    return rtd_leds


def fake_led(root: Path, name: str, *, trigger: str = "none [mmc0] timer heartbeat",
             brightness: str = "0", max_brightness: str = "255") -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    for file, value in (("trigger", trigger), ("brightness", brightness),
                        ("max_brightness", max_brightness), ("delay_on", "500"),
                        ("delay_off", "500")):
        (folder / file).write_text(value + "\n")
    return folder


def shown(folder: Path) -> dict[str, str]:
    return {f: (folder / f).read_text().strip()
            for f in ("trigger", "brightness", "delay_on", "delay_off")
            if (folder / f).is_file()}


def receiver(plugin, root: Path, **table):
    settings = plugin.LedsSettings(root=str(root), **table)
    r = plugin.LedsReceiver(settings)
    r.start()
    return r


def test_each_state_shows_its_pattern(leds, tmp_path):
    led = fake_led(tmp_path, "led0")
    r = receiver(leds, tmp_path, leds=["led0"], patterns={
        "listening": "on", "thinking": "blink 100 200", "speaking": "brightness 40"})
    assert shown(led)["trigger"] == "none" and shown(led)["brightness"] == "0"  # idle: off
    r.receive(StateEvent("listening"))
    assert shown(led)["trigger"] == "none" and shown(led)["brightness"] == "255"
    r.receive(StateEvent("thinking"))
    assert (shown(led)["trigger"], shown(led)["delay_on"], shown(led)["delay_off"]) == \
        ("timer", "100", "200")
    r.receive(StateEvent("speaking"))
    assert (shown(led)["trigger"], shown(led)["brightness"]) == ("none", "40")
    r.receive(StateEvent("error", "server error"))
    # a state left out of the table keeps its default
    assert (shown(led)["trigger"], shown(led)["delay_on"], shown(led)["delay_off"]) == \
        ("timer", "50", "150")
    r.receive(StateEvent("idle"))
    assert (shown(led)["trigger"], shown(led)["brightness"]) == ("none", "0")
    r.stop()


def test_muted_wins_over_every_state_but_an_error(leds, tmp_path):
    led = fake_led(tmp_path, "led0")
    r = receiver(leds, tmp_path, patterns={"muted": "brightness 7", "listening": "on"})
    r.receive(StateEvent("listening", muted=True))
    assert shown(led)["brightness"] == "7"
    r.receive(StateEvent("speaking", muted=True))
    assert shown(led)["brightness"] == "7" and shown(led)["trigger"] == "none"
    r.receive(StateEvent("error", "connection lost", muted=True))
    assert shown(led)["trigger"] == "timer"
    r.receive(StateEvent("listening", muted=False))
    assert (shown(led)["trigger"], shown(led)["brightness"]) == ("none", "255")


def test_every_led_shows_the_pattern_and_brightness_is_capped(leds, tmp_path):
    red = fake_led(tmp_path, "red", max_brightness="1")
    green = fake_led(tmp_path, "green", max_brightness="100")
    r = receiver(leds, tmp_path, leds=["red", "green"], patterns={"listening": "brightness 80"})
    r.receive(StateEvent("listening"))
    assert (shown(red)["brightness"], shown(green)["brightness"]) == ("1", "80")


def test_an_unchanged_pattern_is_not_written_again(leds, tmp_path):
    led = fake_led(tmp_path, "led0")
    r = receiver(leds, tmp_path, patterns={"listening": "on", "user_speaking": "on"})
    r.receive(StateEvent("listening"))
    (led / "brightness").write_text("3")  # someone else wrote it since
    r.receive(StateEvent("listening"))
    assert shown(led)["brightness"] == "3"
    r.receive(StateEvent("user_speaking"))  # another state, another write
    assert shown(led)["brightness"] == "255"


def test_without_the_timers_delay_files_it_blinks_through_brightness(leds, tmp_path):
    """As for the service: the kernel makes delay_on/delay_off root's with each timer."""
    led = fake_led(tmp_path, "led0")
    for file in ("delay_on", "delay_off"):
        (led / file).unlink()
        (led / file).mkdir()  # cannot be written, as root's 0644 files for the rtd user
    r = receiver(leds, tmp_path, patterns={"thinking": "blink 20 20", "listening": "on"})
    r.receive(StateEvent("thinking"))
    assert shown_trigger(led) == "none"
    seen = set()
    assert wait_until(lambda: seen.add(brightness(led)) or seen >= {"0", "255"}, timeout=10)
    r.receive(StateEvent("listening"))  # steady again: the blinking stops
    assert (shown_trigger(led), brightness(led)) == ("none", "255")
    threading.Event().wait(0.1)
    assert brightness(led) == "255"
    r.stop()
    assert r._blinker is not None and not r._blinker.is_alive()


def shown_trigger(folder: Path) -> str:
    return (folder / "trigger").read_text().strip()


def brightness(folder: Path) -> str:
    return (folder / "brightness").read_text().strip()


def test_stop_gives_the_led_back_its_trigger(leds, tmp_path):
    led = fake_led(tmp_path, "led0", trigger="none [mmc0] timer", brightness="1")
    r = receiver(leds, tmp_path)
    r.receive(StateEvent("thinking"))
    r.stop()
    assert shown(led)["trigger"] == "mmc0"

    steady = fake_led(tmp_path, "led1", trigger="[none] timer", brightness="9")
    r = receiver(leds, tmp_path, leds=["led1"])
    r.receive(StateEvent("listening"))
    r.stop()
    assert (shown(steady)["trigger"], shown(steady)["brightness"]) == ("none", "9")

    kept = fake_led(tmp_path, "led2", trigger="none [mmc0] timer")
    r = receiver(leds, tmp_path, leds=["led2"], restore=False)
    r.receive(StateEvent("listening"))
    r.stop()
    assert shown(kept)["trigger"] == "none"


def test_a_failed_write_names_the_file_and_is_retried(leds, tmp_path):
    led = fake_led(tmp_path, "led0")
    r = receiver(leds, tmp_path)
    (led / "brightness").unlink()
    (led / "brightness").mkdir()  # a write now fails
    with pytest.raises(OSError, match=r"cannot write '255' to .*led0/brightness"):
        r.receive(StateEvent("listening"))
    (led / "brightness").rmdir()
    r.receive(StateEvent("listening"))
    assert shown(led)["brightness"] == "255"


@pytest.mark.parametrize(("table", "problem"), [
    ({"patterns": {"thinking": "flash"}},
     "receivers.leds: patterns.thinking: 'flash' is not a pattern; expected \"off\", \"on\", "
     "\"blink ON_MS OFF_MS\" or \"brightness N\" (receivers.leds is disabled)"),
    ({"patterns": {"thinking": "blink 0 100"}},
     "receivers.leds: patterns.thinking: 'blink 0 100': blink times must be from 1 to 60000 ms"),
    ({"patterns": {"sleeping": "off"}},
     "receivers.leds: patterns: unknown state 'sleeping'; known: idle, listening"),
    ({"leds": []}, "receivers.leds: leds: name at least one LED"),
    ({"leds": "led0"}, "receivers.leds.leds: expected an array"),
])
def test_a_bad_table_disables_the_receiver_with_one_line(leds, table, problem):
    registry = plugins.load()
    config = cfg.parse({"receivers": {"leds": table}}, require_key=False, registry=registry)
    assert config.components == ()
    (line,) = config.component_problems
    assert line.startswith(problem) and line.endswith("(receivers.leds is disabled)"), line


def test_check_finds_a_missing_led_a_read_only_file_and_no_timer(leds, tmp_path):
    fake_led(tmp_path, "led0")
    assert list(leds.LedsReceiver.check(leds.LedsSettings(root=str(tmp_path)))) == []
    problems = leds.LedsReceiver.check(leds.LedsSettings(root=str(tmp_path), leds=["ACT"]))
    assert problems == [f"leds: no LED named 'ACT' in {tmp_path}; present: led0"]
    assert leds.LedsReceiver.check(leds.LedsSettings(root=str(tmp_path / "none"))) == [
        f"root: {tmp_path / 'none'} does not exist (this machine has no LED class; is it "
        "a Pi or a board with LEDs?)"]
    plain = fake_led(tmp_path, "plain", trigger="[none] heartbeat")
    assert leds.LedsReceiver.check(leds.LedsSettings(root=str(tmp_path), leds=["plain"])) == [
        "patterns: plain has no timer trigger to blink with (modprobe ledtrig-timer), or use "
        "on/off/brightness only"]
    steady = {s: "on" for s in leds.SHOWN}
    assert leds.LedsReceiver.check(leds.LedsSettings(root=str(tmp_path), leds=["plain"],
                                                     patterns=steady)) == []
    if os.geteuid() != 0:  # root may write a read-only file
        (plain / "brightness").chmod(0o444)
        problems = leds.LedsReceiver.check(leds.LedsSettings(root=str(tmp_path),
                                                             leds=["plain"], patterns=steady))
        assert len(problems) == 1 and problems[0].startswith(
            f"leds: {plain / 'brightness'} is not writable by ")


def test_rtd_check_and_rtd_plugins_see_the_receiver(run_rtd, tmp_path):
    fake_led(tmp_path / "leds", "led0")
    conf = tmp_path / "rtd.toml"
    conf.write_text('[provider]\nname = "custom"\nurl = "ws://127.0.0.1:9/v1/realtime"\n'
                    '[audio.input]\nbackend = "none"\n[audio.output]\nbackend = "none"\n'
                    f'[receivers.leds]\nroot = "{tmp_path / "leds"}"\nleds = ["led0", "ACT"]\n')
    d = run_rtd("check", "--config", str(conf))
    assert d.wait(timeout=30) == 78
    assert (f"receivers.leds.leds: no LED named 'ACT' in {tmp_path / 'leds'}; present: led0 "
            "(receivers.leds is disabled)") in d.output, d.output
    conf.write_text(conf.read_text().replace(', "ACT"', ""))
    d = run_rtd("check", "--config", str(conf))
    assert d.wait(timeout=30) == 0, d.output
    d = run_rtd("plugins", "--config", str(conf))
    assert d.wait(timeout=30) == 0, d.output
    assert "leds (rtd-leds 0.1.0): loaded" in d.lines
    assert ["receiver", "leds", "enabled"] in [line.split() for line in d.lines]


def test_in_rtd_run_the_led_follows_and_is_given_back(run_rtd, tmp_path):
    """rtd's own ACT LED use (mmc0) stops while rtd runs, and comes back when it stops."""
    led = fake_led(tmp_path / "leds", "led0", trigger="none [mmc0] timer", brightness="1")
    conf = tmp_path / "rtd.toml"
    conf.write_text('[provider]\nname = "custom"\nurl = "ws://127.0.0.1:9/v1/realtime"\n'
                    '[audio.input]\nbackend = "none"\n[audio.output]\nbackend = "none"\n'
                    f'[control]\npath = "{tmp_path / "control.sock"}"\n'
                    f'[receivers.leds]\nroot = "{tmp_path / "leds"}"\n'
                    'patterns = { idle = "brightness 9" }\n')
    d = run_rtd("run", "--config", str(conf))
    d.wait_for_line("running; stop with", timeout=30)
    # no conversation (the server is unreachable): idle, or the error of the lost connection
    assert wait_until(lambda: shown_trigger(led) in ("none", "timer"), timeout=10)
    assert shown_trigger(led) != "mmc0"
    assert d.stop() == 0
    assert shown_trigger(led) == "mmc0"  # the kernel's trigger drives the brightness again
    assert "Traceback" not in d.output

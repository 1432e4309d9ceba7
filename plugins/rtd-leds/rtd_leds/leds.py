"""The `leds` receiver: the conversation's state on Linux LEDs, through sysfs.

Linux exposes each LED as a folder, ``/sys/class/leds/NAME``, with a ``brightness`` file
(0 to ``max_brightness``) and a ``trigger`` file choosing what drives it: ``none`` (the
brightness written), ``timer`` (blinking, with ``delay_on`` / ``delay_off`` in milliseconds,
which appear once the trigger is set) or the kernel's own (``mmc0``, ``heartbeat``...). The
Pi's ACT LED and most LED HATs with a kernel driver look like this, so a pattern per state is
a few writes to those files; the kernel does the blinking, rtd uses no CPU for it.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path

from rtd import setting
from rtd.components import Receiver, StateEvent

logger = logging.getLogger(__name__)

SHOWN = ("idle", "listening", "user_speaking", "thinking", "tool_running", "speaking",
         "reconnecting", "error", "muted")
"""What a pattern may be given for: each conversation state, and ``muted``."""

DEFAULT_PATTERNS = {
    "idle": "off",
    "listening": "on",
    "user_speaking": "on",
    "thinking": "blink 100 100",
    "tool_running": "blink 100 100",
    "speaking": "blink 500 100",
    "reconnecting": "blink 50 950",
    "error": "blink 50 150",
    "muted": "blink 50 1950",
}
"""Used for every state the table's ``patterns`` leaves out."""

MAX_DELAY_MS = 60_000


@dataclass(frozen=True)
class Pattern:
    """What one LED shows: a steady brightness, or the kernel's timer blinking it."""

    blink: bool = False
    brightness: int | None = None
    """Steady level; None: the LED's ``max_brightness``; ignored while blinking."""
    delay_on: int = 0
    """Milliseconds on per blink."""
    delay_off: int = 0
    """Milliseconds off per blink."""


def parse_pattern(text: str) -> Pattern:
    """``off``, ``on``, ``blink ON_MS OFF_MS`` or ``brightness N``; ValueError saying which."""
    words = text.split()
    match words:
        case ["off"]:
            return Pattern(brightness=0)
        case ["on"]:
            return Pattern()
        case ["blink", on, off] if on.isdigit() and off.isdigit():
            delay_on, delay_off = int(on), int(off)
            if not (1 <= delay_on <= MAX_DELAY_MS and 1 <= delay_off <= MAX_DELAY_MS):
                raise ValueError(f"{text!r}: blink times must be from 1 to {MAX_DELAY_MS} ms")
            return Pattern(blink=True, delay_on=delay_on, delay_off=delay_off)
        case ["brightness", level] if level.isdigit():
            return Pattern(brightness=int(level))
    raise ValueError(f"{text!r} is not a pattern; expected \"off\", \"on\", "
                     "\"blink ON_MS OFF_MS\" or \"brightness N\"")


@dataclass(frozen=True)
class LedsSettings:
    """The ``[receivers.leds]`` table."""

    leds: list[str] = setting(["led0"], "LED names under root (ls /sys/class/leds): led0 is "
                              "the ACT LED of a Pi 4 and older, ACT on a Pi 5; each shows "
                              "the same pattern")
    patterns: dict[str, str] = setting(
        {}, "pattern per state (idle, listening, user_speaking, thinking, tool_running, "
        "speaking, reconnecting, error, muted): \"off\", \"on\", \"blink ON_MS OFF_MS\" or "
        "\"brightness N\"; states left out keep their defaults")
    restore: bool = setting(True, "give the LEDs back their trigger and brightness when rtd "
                            "stops (the ACT LED shows SD card activity again)")
    root: str = setting("/sys/class/leds", "folder holding the LED folders")

    def __post_init__(self) -> None:
        unknown = sorted(set(self.patterns) - set(SHOWN))
        if unknown:
            raise ValueError(f"patterns: unknown state {', '.join(map(repr, unknown))}; "
                             f"known: {', '.join(SHOWN)}")
        if not self.leds:
            raise ValueError("leds: name at least one LED (ls /sys/class/leds)")
        for state, text in self.patterns.items():
            try:
                parse_pattern(text)
            except ValueError as exc:
                raise ValueError(f"patterns.{state}: {exc}") from None

    @functools.cached_property
    def parsed(self) -> dict[str, Pattern]:
        """Every state's pattern: the table's, else the default."""
        return {state: parse_pattern(self.patterns.get(state, DEFAULT_PATTERNS[state]))
                for state in SHOWN}


def current_trigger(text: str) -> str:
    """The active trigger of a ``trigger`` file: the bracketed word (``none [mmc0] timer``)."""
    found = re.search(r"\[([^\]]+)\]", text)
    return found.group(1) if found else text.strip()


class Led:
    """One LED folder: writes a pattern with as few writes as it takes."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.max_brightness = 1
        self.saved: tuple[str, str] | None = None
        """(trigger, brightness) found at start, for `restore`."""
        self.software_blink = False
        """The timer's delay files could not be written: blink through brightness."""

    def _write(self, name: str, value: str) -> None:
        path = self.folder / name
        try:
            # sysfs wants one write of the whole value; no truncation is needed or possible
            with open(path, "w", encoding="ascii") as f:
                f.write(value)
        except OSError as exc:
            raise OSError(f"cannot write {value!r} to {path}: {exc.strerror or exc}") from None

    def _read(self, name: str) -> str:
        return (self.folder / name).read_text(encoding="ascii").strip()

    def open(self) -> None:
        try:
            self.max_brightness = max(1, int(self._read("max_brightness")))
        except (OSError, ValueError):
            self.max_brightness = 1
        try:
            self.saved = (current_trigger(self._read("trigger")), self._read("brightness"))
        except OSError as exc:
            raise OSError(f"cannot read {self.folder}: {exc.strerror or exc}") from None

    def show(self, pattern: Pattern) -> bool:
        """Show ``pattern``; False when it blinks and the kernel's timer may not be used.

        The kernel creates ``delay_on`` / ``delay_off`` owned by root each time the timer
        trigger is chosen, so a udev rule cannot open them to the rtd group: without them the
        caller blinks the LED itself through ``brightness``.
        """
        if pattern.blink and not self.software_blink:
            self._write("trigger", "timer")
            try:
                self._write("delay_on", str(pattern.delay_on))
                self._write("delay_off", str(pattern.delay_off))
                return True
            except OSError as exc:
                logger.info("leds: %s; blinking %s from rtd instead of the kernel's timer",
                            exc, self.folder.name)
                self.software_blink = True
        self._write("trigger", "none")
        if pattern.blink:
            return False
        self.set(pattern.brightness)
        return True

    def set(self, level: int | None) -> None:
        """A steady brightness: None is the LED's maximum."""
        level = self.max_brightness if level is None else level
        self._write("brightness", str(min(level, self.max_brightness)))

    def restore(self) -> None:
        if self.saved is None:
            return
        trigger, brightness = self.saved
        self._write("trigger", trigger)
        if trigger == "none":
            self._write("brightness", brightness)


class LedsReceiver(Receiver):
    """Shows each state change on the configured LEDs; muted wins over all but an error."""

    name = "leds"
    events = ("state",)
    Settings = LedsSettings

    def __init__(self, settings: LedsSettings | None = None) -> None:
        super().__init__(settings or LedsSettings())
        self.settings: LedsSettings
        self.leds: list[Led] = []
        self.shown: str | None = None
        """The name of the pattern on the LEDs (a state or "muted")."""
        self._blink: tuple[list[Led], Pattern] | None = None
        self._blink_changed = threading.Condition()
        self._blinker: threading.Thread | None = None
        self._stopping = False

    @classmethod
    def check(cls, settings: LedsSettings) -> list[str]:
        root = Path(settings.root)
        if not root.is_dir():
            return [f"root: {root} does not exist (this machine has no LED class; is it "
                    "a Pi or a board with LEDs?)"]
        problems = []
        blinks = any(p.blink for p in settings.parsed.values())
        for name in settings.leds:
            folder = root / name
            if not folder.is_dir():
                present = sorted(p.name for p in root.iterdir())
                problems.append(f"leds: no LED named {name!r} in {root}; present: "
                                f"{', '.join(present) or 'none'}")
                continue
            for file in ("brightness", "trigger"):
                path = folder / file
                if not path.exists():
                    problems.append(f"leds: {path} is missing: {folder} is not an LED")
                elif not os.access(path, os.W_OK):
                    problems.append(
                        f"leds: {path} is not writable by {_user()} (see the README of "
                        "rtd-leds: a udev rule, and ProtectKernelTunables=no for the service)")
            if blinks and (folder / "trigger").exists():
                try:
                    triggers = (folder / "trigger").read_text(encoding="ascii")
                except OSError:
                    continue
                if "timer" not in triggers.replace("[", " ").replace("]", " ").split():
                    problems.append(f"patterns: {name} has no timer trigger to blink with "
                                    "(modprobe ledtrig-timer), or use on/off/brightness only")
        return problems

    def start(self) -> None:
        root = Path(self.settings.root)
        for name in self.settings.leds:
            led = Led(root / name)
            led.open()
            self.leds.append(led)
        self._show("idle")  # no conversation yet: the state before the first connection

    def receive(self, event: StateEvent) -> None:
        muted = bool(getattr(event, "muted", False))
        self._show("muted" if muted and event.state != "error" else event.state)

    def _show(self, what: str) -> None:
        if what == self.shown or what not in self.settings.parsed:
            return
        pattern = self.settings.parsed[what]
        self.shown = None  # until every LED took it: a failed write is retried next time
        self._set_blink(None)
        by_hand = [led for led in self.leds if not led.show(pattern)]
        if by_hand:
            self._set_blink((by_hand, pattern))
        self.shown = what
        logger.debug("leds: %s", what)

    def _set_blink(self, blink: tuple[list[Led], Pattern] | None) -> None:
        with self._blink_changed:
            self._blink = blink
            self._blink_changed.notify()
        if blink is not None and self._blinker is None:
            self._blinker = threading.Thread(target=self._blink_loop, name="rtd-leds-blink",
                                             daemon=True)
            self._blinker.start()

    def _blink_loop(self) -> None:
        """Blinks the LEDs whose timer trigger cannot be used; sleeps while none blink."""
        on = False
        with self._blink_changed:
            while not self._stopping:
                blink = self._blink
                if blink is None:
                    on = False
                    self._blink_changed.wait()
                    continue
                leds, pattern = blink
                on = not on
                for led in leds:
                    try:
                        led.set(None if on else 0)
                    except OSError as exc:
                        logger.warning("leds: %s", exc)
                self._blink_changed.wait((pattern.delay_on if on else pattern.delay_off)
                                         / 1000)

    def stop(self) -> None:
        with self._blink_changed:
            self._stopping = True
            self._blink = None
            self._blink_changed.notify()
        if self._blinker is not None:
            self._blinker.join(timeout=2)
        if not self.settings.restore:
            return
        for led in self.leds:
            try:
                led.restore()
            except OSError as exc:
                logger.warning("leds: %s", exc)


def _user() -> str:
    try:
        import pwd

        return pwd.getpwuid(os.geteuid()).pw_name
    except (ImportError, KeyError):
        return f"uid {os.geteuid()}"


__all__ = ["DEFAULT_PATTERNS", "SHOWN", "Led", "LedsReceiver", "LedsSettings", "Pattern",
           "parse_pattern"]

"""Tests of the example plugin: each component on its own, without a running rtd.

Run from the plugin's folder: ``python -m pytest -q``. The pattern to copy:

- a tool: ``tool.run(settings, json_arguments)`` is exactly what rtd does when the model calls
  it, schema validation included, and returns the string the model would read;
- a sender: give run() a real `SenderContext` whose ``publish`` appends to a list;
- a receiver: build events from `rtd.components` and pass them to receive().
"""

from __future__ import annotations

import json
import threading

from rtd.components import AudioTranscript, InputTranscript, SenderContext, UserText
from rtd.plugins import load

import rtd_example
from rtd_example import (
    DiceSettings,
    HeartbeatSender,
    HeartbeatSettings,
    WordCountReceiver,
    WordCountSettings,
    dice,
)


def call(tool, settings, **arguments) -> dict:
    """Call a tool the way rtd does and decode what the model would read."""
    return json.loads(tool.run(settings, json.dumps(arguments)))


def test_dice_rolls_within_the_sides():
    result = call(dice, DiceSettings(), count=3, sides=20)
    assert len(result["rolls"]) == 3 and result["sides"] == 20
    assert all(1 <= r <= 20 for r in result["rolls"])
    assert result["total"] == sum(result["rolls"])


def test_dice_uses_the_default_sides_from_the_settings():
    assert call(dice, DiceSettings(default_sides=4))["sides"] == 4


def test_dice_mistakes_become_error_outputs():
    assert "at most 2 dice" in call(dice, DiceSettings(max_dice=2), count=3)["error"]
    assert "sides must be" in call(dice, DiceSettings(), sides=1)["error"]
    # the schema refuses a wrong type before the function runs
    assert "expected an integer" in call(dice, DiceSettings(), count="two")["error"]


def run_sender(sender, ctx: SenderContext, timeout: float = 10.0) -> None:
    """Run the sender on a thread, as rtd does, and fail if it does not return in time."""
    thread = threading.Thread(target=sender.run, args=(ctx,), daemon=True)
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), f"run() did not return within {timeout} s"


def test_heartbeat_sends_count_messages():
    published: list[object] = []
    ctx = SenderContext("heartbeat", published.append)  # publish() is how messages leave
    run_sender(HeartbeatSender(HeartbeatSettings(interval=0.01, text="stretch", count=2)), ctx)
    assert published == [UserText("stretch", True), UserText("stretch", True)]


def test_heartbeat_returns_when_stopping():
    ctx = SenderContext("heartbeat", lambda message: ctx.stopping.set())  # stop after one
    run_sender(HeartbeatSender(HeartbeatSettings(interval=0.01)), ctx)


def test_word_count_keeps_totals_in_a_file(tmp_path):
    path = tmp_path / "words.json"
    receiver = WordCountReceiver(WordCountSettings(path=str(path)))
    receiver.start()
    receiver.receive(InputTranscript("item_1", "roll two dice"))
    receiver.receive(AudioTranscript("item_2", "You rolled seven."))
    receiver.stop()
    again = WordCountReceiver(WordCountSettings(path=str(path)))
    again.start()  # a restarted receiver picks up where the last one stopped
    assert again.totals() == {"user": {"words": 3, "turns": 1},
                              "assistant": {"words": 3, "turns": 1}}


def test_rtd_loads_the_plugin():
    registry = load(extra=[("example", rtd_example)], entry_points=[])
    assert registry.tools["dice"] is dice
    assert registry.senders["heartbeat"] is HeartbeatSender
    assert registry.receivers["word_count"] is WordCountReceiver
    assert registry.plugins[0].problems == []


def test_word_count_checks_that_it_can_save_its_totals(tmp_path):
    # the self-check `rtd check` runs: "key: what is wrong" strings, none when all is well
    assert WordCountReceiver.check(WordCountSettings(path=str(tmp_path / "words.json"))) == []
    assert WordCountReceiver.check(WordCountSettings()) == []  # no file: nothing to check
    blocker = tmp_path / "file"
    blocker.write_text("")
    (problem,) = WordCountReceiver.check(WordCountSettings(path=str(blocker / "words.json")))
    assert problem.startswith("path: cannot create")


def test_the_hooks_return_the_same_components_with_and_without_settings():
    # rtd calls register_tools() first with no settings, then with the enabled tools' settings
    assert rtd_example.register_tools({}) == rtd_example.register_tools({"dice": DiceSettings()})

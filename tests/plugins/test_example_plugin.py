"""rtd-example's components on their own: the dice tool, the heartbeat sender, word_count."""

from __future__ import annotations

import json
import logging
import threading

import pytest

from rtd import config as cfg
from rtd import plugins
from rtd.components import (
    EVENT_TYPES,
    AudioTranscript,
    InputTranscript,
    SenderContext,
    StateEvent,
    TextEvent,
    UserText,
)


@pytest.fixture(scope="module")
def example():
    """The installed package (imported only once the session fixture has installed it)."""
    import rtd_example

    return rtd_example


def call(tool, settings, arguments: dict) -> dict:
    """What the model reads after calling ``tool`` with ``arguments``, decoded."""
    return json.loads(tool.run(settings, json.dumps(arguments)))


def run_sender(sender, ctx: SenderContext, timeout: float = 10.0) -> None:
    """Run ``sender.run(ctx)`` on a thread, as rtd does; fail if it has not returned in time."""
    thread = threading.Thread(target=sender.run, args=(ctx,), daemon=True)
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), f"{sender.name}.run() did not return within {timeout} s"


# -- dice -------------------------------------------------------------------------------------


def test_dice_rolls_count_dice_with_the_given_sides(example):
    result = call(example.dice, example.DiceSettings(), {"count": 4, "sides": 12})
    assert result["sides"] == 12 and len(result["rolls"]) == 4
    assert all(1 <= r <= 12 for r in result["rolls"])
    assert result["total"] == sum(result["rolls"])


def test_dice_defaults_come_from_the_settings(example):
    result = call(example.dice, example.DiceSettings(default_sides=2), {})
    assert result["sides"] == 2 and len(result["rolls"]) == 1


@pytest.mark.parametrize(("arguments", "error"), [
    ({"count": 0}, "count must be at least 1, got 0"),
    ({"count": 4}, "at most 3 dice per roll (tools.dice.max_dice), got 4"),
    ({"sides": 1}, "sides must be from 2 to 1000, got 1"),
    ({"sides": 1001}, "sides must be from 2 to 1000, got 1001"),
    ({"count": "two"}, "invalid arguments: count: expected an integer, got a string 'two'"),
    ({"dice": 2}, "invalid arguments: unknown argument 'dice'"),
])
def test_dice_errors_are_outputs_the_model_reads(example, arguments, error):
    result = call(example.dice, example.DiceSettings(max_dice=3), arguments)
    assert result == {"error": result["error"]} and result["error"].startswith(error)


def test_dice_schema_is_what_the_model_sees(example):
    schema = example.dice.schema()
    assert schema["name"] == "dice" and "Roll dice" in schema["description"]
    properties = schema["parameters"]["properties"]
    assert set(properties) == {"count", "sides"}  # no `settings`: the model never fills it
    assert properties["count"]["description"] == "How many dice to roll."
    assert "required" not in schema["parameters"]


def test_dice_table_is_validated_and_a_bad_one_disables_only_the_tool(example):
    registry = plugins.load()
    good = cfg.parse({"tools": {"dice": {"max_dice": 3, "timeout": 2}}}, require_key=False,
                     registry=registry)
    (dice,) = good.components
    assert (dice.name, dice.settings, dice.timeout) == (
        "dice", example.DiceSettings(max_dice=3), 2.0)
    bad = cfg.parse({"tools": {"dice": {"default_sides": 1, "colour": "red"}},
                     "receivers": {"word_count": {}}}, require_key=False, registry=registry)
    assert [c.name for c in bad.components] == ["word_count"]
    range_problem, key_problem = bad.component_problems
    assert range_problem == ("tools.dice.default_sides: expected a value from 2 to 1000, got 1 "
                             "(tools.dice is disabled)")
    assert key_problem.startswith("tools.dice.colour: unknown key")
    assert key_problem.endswith("(tools.dice is disabled)")


# -- heartbeat --------------------------------------------------------------------------------


def test_heartbeat_sends_its_text_count_times_then_returns(example):
    published: list[object] = []
    ctx = SenderContext("heartbeat", published.append)
    settings = example.HeartbeatSettings(interval=0.01, text="Stretch!", respond=False, count=3)
    run_sender(example.HeartbeatSender(settings), ctx)  # returns by itself after `count`
    assert published == [UserText("Stretch!", respond=False)] * 3


def test_heartbeat_stops_when_ctx_stopping_is_set(example):
    published: list[object] = []

    def publish(message: object) -> None:
        published.append(message)
        ctx.stopping.set()  # rtd stops the sender right after its first message

    ctx = SenderContext("heartbeat", publish)
    run_sender(example.HeartbeatSender(example.HeartbeatSettings(interval=0.01)), ctx)
    assert published == [UserText(example.HeartbeatSettings().text, respond=True)]


def test_heartbeat_sends_nothing_once_stopped(example):
    published: list[object] = []
    ctx = SenderContext("heartbeat", published.append)
    ctx.stopping.set()
    run_sender(example.HeartbeatSender(example.HeartbeatSettings(interval=3600)), ctx)
    assert published == []


def test_heartbeat_wait_is_interrupted_by_stopping(example):
    """With an hour's interval, setting ctx.stopping ends run() without the hour passing."""
    ctx = SenderContext("heartbeat", lambda message: None)
    thread = threading.Thread(target=example.HeartbeatSender().run, args=(ctx,), daemon=True)
    thread.start()
    ctx.stopping.set()
    thread.join(timeout=10)
    assert not thread.is_alive()


# -- word_count -------------------------------------------------------------------------------


def test_word_count_subscribes_to_whole_turns_only(example):
    receiver = example.WordCountReceiver
    assert receiver.name == "word_count"
    assert set(receiver.events) == {"input_transcript", "audio_transcript", "text"}
    assert all(kind in EVENT_TYPES for kind in receiver.events)


def test_word_count_counts_each_side_and_logs_each_turn(example, caplog):
    receiver = example.WordCountReceiver()
    receiver.start()
    with caplog.at_level(logging.INFO, logger="rtd_example"):
        receiver.receive(InputTranscript("item_1", "roll two dice please"))
        receiver.receive(AudioTranscript("item_2", "You rolled seven."))
        receiver.receive(TextEvent("item_3", "Again?"))
        receiver.receive(StateEvent("idle"))  # not a turn: ignored
    assert receiver.totals() == {"user": {"words": 4, "turns": 1},
                                 "assistant": {"words": 4, "turns": 2}}
    assert "word_count: user said 4 words (4 in 1 turn)" in caplog.messages
    assert "word_count: assistant said 1 word (4 in 2 turns)" in caplog.messages


def test_word_count_saves_totals_and_resumes_after_a_restart(example, tmp_path):
    path = tmp_path / "state" / "words.json"
    settings = example.WordCountSettings(path=str(path), log_each_turn=False)
    first = example.WordCountReceiver(settings)
    first.start()
    first.receive(InputTranscript("item_1", "one two three"))
    assert json.loads(path.read_text())["user"] == {"words": 3, "turns": 1}  # saved per turn
    first.stop()
    second = example.WordCountReceiver(settings)  # rtd makes a fresh instance per restart
    second.start()
    second.receive(AudioTranscript("item_2", "four five"))
    assert json.loads(path.read_text()) == {"user": {"words": 3, "turns": 1},
                                            "assistant": {"words": 2, "turns": 1}}


def test_word_count_starts_from_zero_on_an_unreadable_file(example, tmp_path, caplog):
    path = tmp_path / "words.json"
    path.write_text("not json")
    receiver = example.WordCountReceiver(example.WordCountSettings(path=str(path)))
    with caplog.at_level(logging.WARNING, logger="rtd_example"):
        receiver.start()
    assert "cannot read totals" in caplog.text
    receiver.receive(InputTranscript("item_1", "hello"))
    assert json.loads(path.read_text())["user"] == {"words": 1, "turns": 1}


def test_word_count_without_a_path_writes_nothing(example, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    receiver = example.WordCountReceiver(example.WordCountSettings(log_each_turn=False))
    receiver.start()
    receiver.receive(InputTranscript("item_1", "hello"))
    receiver.stop()
    assert list(tmp_path.iterdir()) == []

"""Scenario files: the demo data loads, and bad files are reported line by line."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest

from rtd.emulator import DEMO_QUESTION_WAV, DEMO_SCENARIO, Emulator, format_then, load_scenario
from rtd.exceptions import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "scenario.toml"
    path.write_text(text, encoding="utf-8")
    return path


def problems_of(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as raised:
        load_scenario(path)
    return raised.value.problems


def test_demo_scenario_asks_the_time_and_calls_the_clock() -> None:
    scenario = load_scenario(DEMO_SCENARIO)
    assert len(scenario.turns) == 1
    turn = scenario.turns[0]
    assert turn.transcript == "What time is it?"
    assert turn.call == "clock"
    assert dict(turn.arguments) == {}
    assert format_then(turn.then, '{"time": "14:05", "date": "Saturday 21 November 2026", '
                                  '"timezone": "UTC", "iso": "2026-11-21T14:05:00Z"}') == \
        "It is 14:05 on Saturday 21 November 2026."


def test_demo_question_wav_is_16_khz_speech_between_silences() -> None:
    assert DEMO_QUESTION_WAV.stat().st_size < 150_000
    with wave.open(str(DEMO_QUESTION_WAV)) as wav:
        assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (16000, 1, 2)
        samples = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").astype(float)
    assert 2.5 < samples.size / 16000 < 4.0

    def level(start: float, end: float) -> float:
        part = samples[int(start * 16000):int(end * 16000)]
        return float(np.sqrt(np.mean(part * part)))

    assert level(0.0, 0.45) < 50  # leading silence
    assert level(0.5, 1.5) > 1000  # the question
    assert level(samples.size / 16000 - 1.3, samples.size / 16000) < 50  # trailing silence


def test_a_scenario_file_drives_the_emulator(tmp_path: Path) -> None:
    path = write(tmp_path, 'default_reply = "Pardon?"\n[[turn]]\nreply = "Hello."\n')
    with Emulator(scenario=str(path), voice_engine="tones") as emulator:
        assert emulator.scenario.default_reply == "Pardon?"
        assert emulator.scenario.turns[0].reply == "Hello."
        assert emulator.scenario.source == str(path)


def test_every_problem_is_reported_with_its_place(tmp_path: Path) -> None:
    path = write(tmp_path, """
default_reply = 3
colour = "blue"

[[turn]]
transcript = "ok"
reply = "fine"

[[turn]]
reply = "both"
call = "clock"
then = "It is {time"

[[turn]]
then = "orphan"
arguments = {a = 1}
stall_seconds = -1

[[turn]]
transcrpt = "typo"
close = 999
drop = "yes"

[[turn]]
error = {type = "server_error", message = 5, extra = "x"}

[[turn]]
close = 1001
reply = "and a reply"
""")
    problems = problems_of(path)
    where = str(path)
    expected = [
        f"{where}: default_reply: must be a string, not an integer",
        f"{where}: colour: unknown key",
        f"{where}: turn 2: reply: cannot be combined with call",
        f"{where}: turn 2: then: not a valid format string",
        f"{where}: turn 3: then: needs `call`",
        f"{where}: turn 3: arguments: needs `call`",
        f"{where}: turn 3: stall_seconds: must not be negative",
        f"{where}: turn 4: transcrpt: unknown key; did you mean 'transcript'?",
        f"{where}: turn 4: close: 999 is not a close code",
        f"{where}: turn 4: drop: must be true or false, not a string",
        f"{where}: turn 5: error.message: must be a string, not an integer",
        f"{where}: turn 5: error.extra: unknown key",
        f"{where}: turn 6: close: cannot be combined with reply",
    ]
    for start in expected:
        assert any(p.startswith(start) for p in problems), (start, problems)
    assert not any(": turn 1:" in p for p in problems)
    assert len(problems) == len(expected)


@pytest.mark.parametrize(("text", "message"), [
    ("[turn]\nreply = 'x'\n", "turn: must be an array of tables: write [[turn]], not [turn]"),
    ("[[turn]\nreply = 'x'\n", "not valid TOML"),
    ("turn = 3\n", "turn: must be an array of tables, not an integer"),
    ("[[turn]]\narguments = {}\ncall = 'clock'\nthen = 5\n", "turn 1: then: must be a string"),
])
def test_malformed_files(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    problems = problems_of(path)
    assert len(problems) == 1
    assert problems[0].startswith(f"{path}: ")
    assert message in problems[0]


def test_a_missing_file_is_a_config_error(tmp_path: Path) -> None:
    problems = problems_of(tmp_path / "nope.toml")
    assert "cannot read the scenario file" in problems[0]


@pytest.mark.parametrize(("template", "output", "spoken"), [
    ("It is {time}.", '{"time": "09:30"}', "It is 09:30."),
    ("It is {time}.", '{"hour": 9}', '{"hour": 9}'),
    ("It is {time}.", '["09:30"]', '["09:30"]'),
    ("It is {time}.", "not json", "not json"),
    (None, '{"time": "09:30"}', '{"time": "09:30"}'),
])
def test_then_is_formatted_from_a_json_object_or_the_output_is_spoken(
        template: str | None, output: str, spoken: str) -> None:
    assert format_then(template, output) == spoken

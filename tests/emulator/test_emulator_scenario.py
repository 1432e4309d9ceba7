"""Scenario files: the demo data loads, and bad files are reported line by line."""

from __future__ import annotations

import textwrap
import wave
from pathlib import Path

import numpy as np
import pytest
import tomllib

import rtd.emulator
from rtd.emulator import (
    DEMO_QUESTION_WAV,
    DEMO_SCENARIO,
    Emulator,
    Fault,
    ScriptedError,
    format_then,
    load_scenario,
    parse_faults,
)
from rtd.emulator.scenario import parse_scenario
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


# -- [[fault]] tables --------------------------------------------------------------------------


def test_fault_tables_load_with_their_defaults(tmp_path: Path) -> None:
    path = write(tmp_path, """
[[turn]]
reply = "Hi."

[[fault]]
at = "response.output_audio.delta"
nth = 3
turn = 1
do = "reset"

[[fault]]
at = "upgrade"
do = "http"
status = 503
retry_after = 2
times = "always"

[[fault]]
at = "response.done"
do = "replace"
set = {"response.output" = ["oops"], response.status = "odd"}
unset = ["event_id"]
null = ["response.usage"]

[[fault]]
at = "response.done"
do = "error"
when = "instead"
error = {type = "server_error", code = "overloaded"}
""")
    faults = load_scenario(path).faults
    assert faults[0] == Fault(at="response.output_audio.delta", do="reset", nth=3, turn=1)
    assert faults[1].status == 503 and faults[1].retry_after == "2" and faults[1].times is None
    assert faults[1].when == "before"
    assert faults[2].when == "instead"
    assert dict(faults[2].set) == {"response.output": ["oops"], "response": {"status": "odd"}}
    assert faults[2].unset == ("event_id",) and faults[2].null == ("response.usage",)
    assert faults[3].error == ScriptedError(type="server_error", code="overloaded")
    assert faults[3].describe() == "error instead response.done"


def test_every_fault_problem_is_one_line_naming_the_key(tmp_path: Path) -> None:
    path = write(tmp_path, """
[[fault]]
at = "response.done"
do = "dorp"

[[fault]]
at = "response.audio.delta"
do = "drop"
colour = "red"

[[fault]]
at = "response.done"
do = "drop"
code = 1000
when = "instead"

[[fault]]
at = "session.created"
do = "http"
status = 503

[[fault]]
at = "upgrade"
do = "send"
text = "x"

[[fault]]
at = "response.done"
do = "send"

[[fault]]
at = "response.done"
do = "replace"
when = "after"

[[fault]]
at = "response.done"
do = "close"
code = 999
nth = 0

[[fault]]
at = "response.done"
do = "close"
reason = "no code"
times = "sometimes"

[[fault]]
at = "upgrade"
do = "http"
status = 101
headers = {"bad header" = "x"}

[[fault]]
at = "response.done"
do = "send"
json = {}
pad_to = 100000000000

[[fault]]
do = "stall_sending"
seconds = 0

[fault]
""".replace("\n[fault]\n", "\n"))
    where = str(path)
    expected = [
        f"{where}: fault 1: do: unknown action 'dorp'; did you mean 'drop'?",
        f"{where}: fault 2: at: 'response.audio.delta' is not an event the emulator sends; "
        "did you mean 'response.output_audio.delta'?",
        f"{where}: fault 2: colour: unknown key",
        f"{where}: fault 3: code: not used by do = 'drop' (it takes no parameters)",
        f"{where}: fault 3: when: must be one of before, after for do = 'drop', not 'instead'",
        f"{where}: fault 4: do: 'http' answers the WebSocket upgrade",
        f"{where}: fault 5: do: 'send' cannot happen at the upgrade",
        f"{where}: fault 6: text: send needs the frame",
        f"{where}: fault 7: when: not used by do = 'replace' (it always replaces the event)",
        f"{where}: fault 7: set: replace needs set, unset, null, binary or pad_to",
        f"{where}: fault 8: nth: must be at least 1 (got 0)",
        f"{where}: fault 8: code: 999 is not a close code",
        f"{where}: fault 9: times: must be a count or \"always\", not 'sometimes'",
        f"{where}: fault 9: reason: needs `code`",
        f"{where}: fault 10: status: 101 is not an HTTP status that refuses an upgrade",
        f"{where}: fault 10: headers: 'bad header' is not an HTTP header name",
        f"{where}: fault 11: pad_to: must be a size in bytes",
        f"{where}: fault 12: at: missing",
        f"{where}: fault 12: seconds: must be positive",
    ]
    problems = problems_of(path)
    for start in expected:
        assert any(p.startswith(start) for p in problems), (start, problems)
    assert len(problems) == len(expected), problems
    assert all("\n" not in p for p in problems)


def test_fault_must_be_an_array_of_tables(tmp_path: Path) -> None:
    problems = problems_of(write(tmp_path, '[fault]\nat = "upgrade"\ndo = "drop"\n'))
    assert problems == [f"{tmp_path / 'scenario.toml'}: fault: must be an array of tables: "
                        "write [[fault]], not [fault]"]


def test_faults_given_in_code_are_checked_like_a_files() -> None:
    with pytest.raises(ConfigError) as raised:
        Emulator(faults=[{"at": "response.done", "do": "duplicate", "copies": 0},
                         'at = "upgrade", do = "http"',
                         Fault(at="response.done", do="close", code=42),
                         "not toml ="], voice_engine="tones")
    assert raised.value.problems == [
        "Emulator(faults=...) item 1: copies: must be an integer 1..100, not 0",
        "Emulator(faults=...) item 2: status: missing; the HTTP status answering the upgrade, "
        "e.g. status = 503",
        "Emulator(faults=...) item 3: code: 42 is not a close code (use 1000-4999; codes the "
        "RFC keeps off the wire, like 1005, are sent anyway)",
        raised.value.problems[3],
    ]
    assert raised.value.problems[3].startswith("Emulator(faults=...) item 4: not a TOML inline")
    assert parse_faults(['at = "response.done", do = "duplicate", copies = 2'])[0].copies == 2


def test_the_documented_fault_examples_load() -> None:
    doc = rtd.emulator.__doc__ or ""
    blocks = [doc[doc.index("`rtd emulate --fault"):doc.index("Where: `at`")],
              doc[doc.index("Examples:"):doc.index("Problems in a file")]]
    for block in blocks:
        toml = textwrap.dedent("\n".join(line for line in block.splitlines()
                                         if line.startswith("    ")))
        faults = parse_scenario(tomllib.loads(toml), "doc").faults
        assert faults and all(isinstance(f, Fault) for f in faults)

"""`rtd run` as a real process against the emulator: the whole conversation, and bad input."""

from __future__ import annotations

import json
import re
import socket
import wave
from pathlib import Path

import numpy as np
import pytest
from rtdproc import KEY, wait_until, write_config

from rtd.audio.file_backend import read_wav as read_pcm24
from rtd.emulator import DEMO_QUESTION_WAV, DEMO_SCENARIO, Emulator, load_scenario
from rtd.emulator.voice import synthesize


def read_wav(path: Path) -> tuple[int, int, bytes]:
    with wave.open(str(path)) as w:
        return w.getframerate(), w.getnchannels(), w.readframes(w.getnframes())


@pytest.fixture(params=["ga", "beta", "xai"])
def dialect_emulator(request):
    """The demo's emulator in each dialect: the same conversation must hold in all of them."""
    with Emulator(scenario=load_scenario(DEMO_SCENARIO), voice_engine="tones",
                  dialect=request.param) as emu:
        yield emu


def test_conversation_with_a_tool_call(run_rtd, dialect_emulator, tmp_path):
    emu = dialect_emulator
    out = tmp_path / "speaker.wav"
    conf = write_config(tmp_path / "rtd.toml", emu.url, input_wav=DEMO_QUESTION_WAV,
                        output_wav=out, provider=f'dialect = "{emu.dialect.name}"')
    d = run_rtd("run", "--config", str(conf))
    assert f"using config {conf} (--config)" in d.wait_for_line("using config")
    answer = d.wait_for_line("assistant: It is ", timeout=40)
    d.wait_for_line("user: What time is it?")
    tool_line = d.wait_for_line("tool: clock({}) -> ")
    result = json.loads(tool_line.split(" -> ", 1)[1])
    assert f"It is {result['time']} on {result['date']}." in answer

    # what went over the wire, in order
    received = emu.received
    types = [e["type"] for e in received]
    assert types[0] == "session.update"
    session = received[0]["session"]
    assert session["type"] == "realtime"
    assert session["audio"]["input"]["format"] == {"type": "audio/pcm", "rate": 24000}
    assert [t["name"] for t in session["tools"]] == ["clock"]
    appended = sum(e.get("audio_bytes", 0) for e in received
                   if e["type"] == "input_audio_buffer.append")
    question, _fmt = read_pcm24(DEMO_QUESTION_WAV)
    heard = emu.input_audio  # read after `received`: the microphone streams on meanwhile
    assert len(heard) >= appended > 24000
    assert heard[: len(question)] == question[: len(heard)]
    outputs = [i for i, e in enumerate(received) if e["type"] == "conversation.item.create"
               and e["item"]["type"] == "function_call_output"]
    assert len(outputs) == 1
    call = emu.wait_for(lambda e: e["type"] == "response.create", timeout=10)
    assert types.index("response.create") > outputs[0] and call["type"] == "response.create"
    assert json.loads(received[outputs[0]]["item"]["output"]) == result
    assert not [e for e in emu.sent if e["type"] == "error"]

    # what reached the speaker: the emulator's spoken answer, byte for byte, in the WAV that
    # the file backend writes at a speaker's pace (its header is valid at every moment)
    spoken = synthesize(answer.split("assistant: ", 1)[1], "tones")
    assert wait_until(lambda: read_wav(out)[2].find(spoken) >= 0, timeout=30,
                      interval=0.1), \
        "the spoken answer never reached the speaker"
    assert d.stop() == 0
    assert "Traceback" not in d.output and KEY not in d.output
    rate, channels, _ = read_wav(out)
    assert (rate, channels) == (24000, 1)



def _two_questions(tmp_path: Path) -> Path:
    rate, _, pcm = read_wav(DEMO_QUESTION_WAV)
    q = np.frombuffer(pcm, np.int16)
    gap = np.zeros(rate * 3, np.int16)
    path = tmp_path / "two.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.concatenate([q, gap, q]).tobytes())
    return path


def test_openai_provider_finds_the_server_through_openai_base_url(run_rtd, tmp_path):
    """The shipped provider (openai, no url) reaches whatever $OPENAI_BASE_URL names, as the
    OpenAI SDK does: here the emulator, which wants the key rtd sends."""
    with Emulator(scenario=load_scenario(DEMO_SCENARIO), voice_engine="tones",
                  api_key=KEY) as emu:
        conf = write_config(tmp_path / "rtd.toml", emu.url, input_wav=DEMO_QUESTION_WAV,
                            output_wav=tmp_path / "o.wav")
        conf.write_text(conf.read_text().replace('name = "custom"', 'name = "openai"')
                        .replace(f'url = "{emu.url}"', 'url = ""'))
        base = f"http://127.0.0.1:{emu.port}/v1"
        d = run_rtd("run", "--config", str(conf), extra_env={"OPENAI_BASE_URL": base})
        d.wait_for_line("assistant: It is ", timeout=40)
        assert emu.paths[0] == "/v1/realtime?model=gpt-realtime-2"
        assert d.stop() == 0
    assert KEY not in d.output


def test_server_error_events_are_logged_and_the_session_stays_up(run_rtd, tmp_path):
    scenario = tmp_path / "s.toml"
    scenario.write_text('[[turn]]\nerror = { type = "server_error", code = "overloaded_test", '
                        'message = "try again" }\n[[turn]]\nreply = "Fine now."\n')
    with Emulator(scenario=load_scenario(scenario), voice_engine="tones") as emu:
        conf = write_config(tmp_path / "rtd.toml", emu.url, input_wav=_two_questions(tmp_path),
                            output_wav=tmp_path / "o.wav")
        d = run_rtd("run", "--config", str(conf))
        d.wait_for_line("server error overloaded_test: try again", timeout=30)
        d.wait_for_line("assistant: Fine now.", timeout=30)
        assert emu.connections == 1
        assert d.stop() == 0


def test_unreachable_server_is_retried_with_backoff(run_rtd, tmp_path):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    conf = write_config(tmp_path / "rtd.toml", f"ws://127.0.0.1:{port}/v1/realtime",
                        input_wav=DEMO_QUESTION_WAV, output_wav=tmp_path / "o.wav")
    d = run_rtd("run", "--config", str(conf))
    first = d.wait_for_line("retrying in")
    assert "connection refused" in first and "(attempt 1)" in first
    d.wait_for_line("(attempt 3)", timeout=15)
    attempts = [int(m) for m in re.findall(r"\(attempt (\d+)\)", d.output)]
    delays = [float(m) for m in re.findall(r"retrying in ([\d.]+) s", d.output)]
    assert attempts == list(range(1, len(attempts) + 1))
    assert delays[1] > delays[0] * 1.3  # the waits grow: no tight loop
    assert d.stop() == 0


def test_refused_key_exits_77_without_showing_it(run_rtd, tmp_path):
    with Emulator(api_key="the-right-key", voice_engine="tones") as emu:
        conf = write_config(tmp_path / "rtd.toml", emu.url, input_wav=DEMO_QUESTION_WAV,
                            output_wav=tmp_path / "o.wav")
        d = run_rtd("run", "--config", str(conf))
        assert d.wait(timeout=20) == 77
    assert "refused the credentials (HTTP 401" in d.output
    assert KEY not in d.output and "Traceback" not in d.output


def test_config_errors_exit_78_with_every_problem(run_rtd, tmp_path):
    conf = tmp_path / "bad.toml"
    conf.write_text('[session]\nvoice = "robot"\nturn_detect = "none"\n[audio.output]\n'
                    'backend = "file"\n')
    d = run_rtd("run", "--config", str(conf))
    assert d.wait() == 78
    assert "session.voice: expected one of" in d.output
    assert "session.turn_detect: unknown key (did you mean 'turn_detection'?)" in d.output
    assert "audio.output.path: required when audio.output.backend is 'file'" in d.output
    assert "Traceback" not in d.output


def test_missing_key_is_a_config_error(run_rtd, tmp_path):
    conf = tmp_path / "rtd.toml"
    conf.write_text("[log]\nlevel = 'info'\n")
    d = run_rtd("check", "--config", str(conf), extra_env={"OPENAI_API_KEY": ""})
    assert d.wait() == 78
    assert "provider.api_key_env: no API key: $OPENAI_API_KEY is not set" in d.output


def test_unreadable_wav_is_named(run_rtd, tmp_path):
    bad = tmp_path / "notes.wav"
    bad.write_text("this is not audio")
    conf = write_config(tmp_path / "rtd.toml", "ws://127.0.0.1:9/v1/realtime", input_wav=bad,
                        output_wav=tmp_path / "o.wav")
    d = run_rtd("check", "--config", str(conf))
    assert d.wait() == 78
    assert "audio.input.path" in d.output and str(bad) in d.output
    assert "Traceback" not in d.output
    d = run_rtd("run", "--config", str(conf))
    assert d.wait() == 1
    assert "cannot start" in d.output and str(bad) in d.output
    assert "Traceback" not in d.output


def test_missing_config_file_is_named(run_rtd, tmp_path):
    d = run_rtd("run", "--config", str(tmp_path / "nope.toml"))
    assert d.wait() == 78
    assert f"{tmp_path / 'nope.toml'}: no such file" in d.output


def test_config_command_masks_secrets(run_rtd, tmp_path):
    conf = tmp_path / "rtd.toml"
    conf.write_text('[provider]\nheaders = { "x-portkey-api-key" = "pk-live-77" }\n')
    d = run_rtd("config", "--config", str(conf))
    assert d.wait() == 0
    assert "pk-live-77" not in d.output and KEY not in d.output
    assert "# api key: set, from $OPENAI_API_KEY" in d.output
    assert 'model = "gpt-realtime-2"' in d.output


def test_check_passes_on_a_good_config(run_rtd, tmp_path):
    conf = write_config(tmp_path / "rtd.toml", "ws://127.0.0.1:9/v1/realtime",
                        input_wav=DEMO_QUESTION_WAV, output_wav=tmp_path / "o.wav")
    d = run_rtd("check", "--config", str(conf))
    assert d.wait() == 0, d.output
    assert "config OK" in d.output and "tools: clock" in d.output


def test_demo_runs_offline_and_writes_the_speaker(run_rtd, tmp_path):
    out = tmp_path / "demo.wav"
    # an installed daemon answers on the configured control socket: the demo leaves it alone
    daemons = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    daemons.bind(str(tmp_path / "control.sock"))
    daemons.listen(1)
    conf = tmp_path / "rtd.toml"
    conf.write_text(f'[control]\npath = "{tmp_path / "control.sock"}"\n')
    d = run_rtd("demo", "--config", str(conf), "--out", str(out), "--voice", "tones")
    assert d.wait(timeout=90) == 0, d.output
    daemons.close()
    assert "control.path" not in d.output
    assert "not the OpenAI service" in d.output
    assert "user: What time is it?" in d.output
    tool = re.search(r"tool: clock\(\{\}\) -> (\{.*\})", d.output)
    assert tool, d.output
    result = json.loads(tool.group(1))
    assert f"assistant: It is {result['time']} on {result['date']}." in d.output
    rate, channels, pcm = read_wav(out)
    assert (rate, channels) == (24000, 1)
    spoken = synthesize(f"It is {result['time']} on {result['date']}.", "tones")
    assert pcm.find(spoken) >= 0  # the whole answer reached the speaker
    assert f"wrote {out}" in d.output


def test_key_refused_after_the_upgrade_exits_77(run_rtd, tmp_path):
    """The live service accepts the upgrade, sends invalid_api_key, then closes with 3000."""
    with Emulator(api_key="the-right-key", auth_failure="close", voice_engine="tones") as emu:
        conf = write_config(tmp_path / "rtd.toml", emu.url, input_wav=DEMO_QUESTION_WAV,
                            output_wav=tmp_path / "o.wav")
        d = run_rtd("run", "--config", str(conf))
        assert d.wait(timeout=20) == 77
        assert emu.connections == 1  # refused credentials are not retried
    assert "invalid_api_key" in d.output
    assert KEY not in d.output and "Traceback" not in d.output

"""On-demand conversations and the session's status, as a user drives them: `rtd run`, then
`rtd wake`, `rtd sleep` and `rtd status --json` against the real emulator."""

from __future__ import annotations

import json
import time

from rtdproc import wait_until, write_config

from rtd.emulator import DEMO_QUESTION_WAV, Emulator

ON_DEMAND = """
[session]
start = "on_demand"
idle_close_s = 5.0
"""


def status(run_rtd, conf) -> dict:
    s = run_rtd("status", "--json", "--config", str(conf))
    assert s.wait() == 0, s.output
    return json.loads(s.output)


def command(run_rtd, conf, name: str) -> None:
    c = run_rtd(name, "--config", str(conf))
    assert c.wait() == 0, c.output
    assert c.output == ""


def test_wake_sleep_and_the_idle_cut_off_of_an_on_demand_conversation(run_rtd, demo_emulator,
                                                                     tmp_path):
    emu: Emulator = demo_emulator
    conf = write_config(tmp_path / "rtd.toml", emu.url, input_wav=DEMO_QUESTION_WAV,
                        output_wav=tmp_path / "out.wav", extra=ON_DEMAND)
    d = run_rtd("run", "--config", str(conf))
    d.wait_for_line("not connecting until a wake", timeout=20)
    assert wait_until(lambda: (tmp_path / "control.sock").exists(), timeout=10)
    asleep = status(run_rtd, conf)
    assert asleep["connected"] is False and asleep["start"] == "on_demand"
    assert asleep["offline"] == "on demand: waiting for a wake"
    # the question in the WAV is said (3.1 s) while asleep: none of it may leave the box
    d.wait_for_line("microphone:", timeout=10)
    time.sleep(4.0)  # longer than the question
    assert emu.attempts == 0

    command(run_rtd, conf, "wake")
    d.wait_for_line("connected to", timeout=10)  # (the log: a status call takes a process)
    assert not any(e["type"] == "input_audio_buffer.speech_started"
                   for e in emu.sessions[0].server_events)  # only the quiet room after it
    command(run_rtd, conf, "sleep")
    assert emu.sessions[0].ended.wait(10)
    assert emu.sessions[0].client_close is not None and emu.sessions[0].client_close[0] == 1000
    assert wait_until(lambda: "sleep" in (status(run_rtd, conf)["offline"] or ""), timeout=10)
    assert d.count("closing the conversation: asked to sleep (control)") == 1

    command(run_rtd, conf, "wake")  # a new conversation; nobody speaks: it closes by itself
    assert wait_until(lambda: len(emu.sessions) == 2, timeout=10)
    assert emu.sessions[1].ended.wait(20)
    assert emu.sessions[1].client_close is not None
    d.wait_for_line("closing the conversation: nobody spoke for 5 s", timeout=10)
    assert len(emu.sessions) == 2  # no reconnect after either close
    assert d.stop() == 0
    assert "Traceback" not in d.output


def test_status_counts_the_turns_and_tool_calls_of_a_conversation(run_rtd, demo_emulator,
                                                                  tmp_path):
    conf = write_config(tmp_path / "rtd.toml", demo_emulator.url, input_wav=DEMO_QUESTION_WAV,
                        output_wav=tmp_path / "out.wav")
    d = run_rtd("run", "--config", str(conf))
    d.wait_for_line("assistant: It is", timeout=30)
    assert wait_until(lambda: status(run_rtd, conf)["tool_calls"] == 1, timeout=10)
    got = status(run_rtd, conf)
    assert got["connected"] is True and got["start"] == "always" and got["offline"] is None
    assert got["turns"] == 1 and got["reconnects"] == 0 and got["recycles"] == 0
    assert got["interruptions"] == 0 and got["dropped_audio_ms"] == 0
    assert isinstance(got["session_age_s"], int) and got["session_age_s"] >= 0
    assert 3500 < got["expires_in_s"] <= 3600  # the emulator's hour, from session.created
    assert got["minutes_today"] > 0 and got["minutes_left_today"] is None
    assert d.stop() == 0


def test_check_says_when_rtd_connects_and_where_the_budget_is_kept(run_rtd, tmp_path):
    state = tmp_path / "state"
    conf = write_config(tmp_path / "rtd.toml", "ws://127.0.0.1:9/v1/realtime",
                        input_wav=DEMO_QUESTION_WAV, output_wav=tmp_path / "out.wav",
                        extra=f'[session]\nstart = "on_demand"\nmax_minutes_per_day = 30\n'
                              f'state_dir = "{state}"\n')
    c = run_rtd("check", "--config", str(conf))
    assert c.wait() == 0, c.output
    assert (f"session: start on_demand, at most 30 connected minutes a day "
            f"({state / 'usage.json'})") in c.lines
    assert not state.exists()  # a check looks, it does not touch

    blocker = tmp_path / "a-file"
    blocker.write_text("")
    conf.write_text(conf.read_text().replace(str(state), str(blocker / "state")))
    c = run_rtd("check", "--config", str(conf))
    assert c.wait() == 0, c.output
    assert any(line.startswith("warning: session.state_dir: ") for line in c.lines), c.output

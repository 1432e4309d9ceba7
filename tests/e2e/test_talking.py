"""Talking to the real `rtd run`: barge-in, push-to-talk through a real input device record
stream, text-only answers, and the state machine's main path, against the emulator.

The microphone is a WAV file played in real time (then a quiet room) and the speaker a WAV file
written at a speaker's pace, so the emulator's energy VAD hears the user start and stop as it
would from a room, and what rtd played is in the file, byte for byte.
"""

from __future__ import annotations

import json
import os
import re
import struct
import wave
from pathlib import Path

import numpy as np
from rtdproc import KEY, wait_until, write_config

from rtd.emulator import Emulator, load_scenario
from rtd.emulator.voice import synthesize

RATE = 24000
STORY = ("Once upon a time a small robot lived in a kitchen, and every morning it counted the "
         "spoons, the forks and the knives, and then it sang a long song about all of them.")


def speech(seconds: float) -> np.ndarray:
    """A loud vowel-like buzz: speech to the emulator's energy VAD."""
    t = np.arange(int(seconds * RATE)) / RATE
    return (0.3 * 32767 * np.sin(2 * np.pi * 220 * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))
            ).astype(np.int16)


def quiet(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * RATE), np.int16)


def write_wav(path: Path, *parts: np.ndarray) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(np.concatenate(parts).tobytes())
    return path


def read_pcm(path: Path) -> bytes:
    with wave.open(str(path)) as w:
        return w.readframes(w.getnframes())


def configure(path: Path, url: str, mic: Path, out: Path, extra: str) -> Path:
    """The e2e configuration (tests/rtdproc.py) with ``extra`` tables, logging at debug: the
    state actor logs each change there."""
    write_config(path, url, input_wav=mic, output_wav=out, extra=extra)
    path.write_text(path.read_text().replace('level = "info"', 'level = "debug"'))
    return path


def scenario(tmp_path: Path, *replies: tuple[str, str]) -> Path:
    path = tmp_path / "scenario.toml"
    path.write_text("".join(f'[[turn]]\ntranscript = "{heard}"\nreply = "{said}"\n\n'
                            for heard, said in replies))
    return path


def test_speaking_over_the_assistant_stops_it_and_keeps_only_what_was_heard(run_rtd, tmp_path):
    # the user asks, the story starts playing, the user speaks over it 2.5 s into it
    mic = write_wav(tmp_path / "mic.wav", quiet(0.5), speech(1.0), quiet(3.0), speech(1.0))
    out, log = tmp_path / "speaker.wav", tmp_path / "transcript.jsonl"
    story = synthesize(STORY, "tones")
    with Emulator(scenario=load_scenario(scenario(tmp_path, ("Tell me a story.", STORY),
                                                  ("Stop.", "Okay."))),
                  voice_engine="tones") as emu:
        conf = configure(tmp_path / "rtd.toml", emu.url, mic, out,
                         f'[audio]\necho = "none"\n[receivers.console]\n'
                         f'[receivers.transcript_log]\npath = "{log}"\n')
        d = run_rtd("run", "--config", str(conf))
        heard = d.wait_for_line("assistant (interrupted): ", timeout=40)
        d.wait_for_line("assistant: Okay.", timeout=30)
        truncate = emu.wait_for(lambda e: e["type"] == "conversation.item.truncate", timeout=5)
        assert wait_until(lambda: read_pcm(out).find(synthesize("Okay.", "tones")) >= 0,
                          timeout=20)
        assert d.stop() == 0
    # the cut: within the story's audio, at what the speaker had played
    assert truncate["content_index"] == 0
    assert 0 < truncate["audio_end_ms"] < len(story) // 48
    played = read_pcm(out)
    cut = truncate["audio_end_ms"] * 48
    assert played.find(story[: cut - 4800]) >= 0  # heard up to the cut (less a block) ...
    assert played.find(story[cut + 24000: cut + 48000]) < 0  # ... and nothing a second past it
    # the server never refused it, and its transcript is what was heard, marked interrupted
    assert not [e for e in emu.sent if e["type"] == "error"]
    said = heard.split("assistant (interrupted): ", 1)[1]
    assert said and STORY.startswith(said) and len(said) < len(STORY)
    lines = [json.loads(x) for x in log.read_text().splitlines()]
    story_line = next(x for x in lines if x["role"] == "assistant")
    assert story_line == {**story_line, "text": said, "interrupted": True}
    assert {"role": "user", "text": "Stop."}.items() <= lines[-2].items()
    # the state followed: speaking until the speaker stopped, then the user's turn
    states = re.findall(r"state (\w+) -> (\w+)", d.output)
    assert ("speaking", "user_speaking") in states
    assert states[-1] == ("speaking", "listening")
    assert "Traceback" not in d.output and KEY not in d.output


def test_a_cough_under_barge_in_min_ms_leaves_the_answer_playing(run_rtd, tmp_path):
    # the question; a 150 ms cough 2 s into the story; 1.2 s of real speech 4 s into it
    mic = write_wav(tmp_path / "mic.wav", quiet(0.5), speech(1.0), quiet(2.5), speech(0.15),
                    quiet(2.0), speech(1.2))
    out = tmp_path / "speaker.wav"
    with Emulator(scenario=load_scenario(scenario(
            tmp_path, ("Tell me a story.", STORY), ("(cough)", "Bless you."),
            ("Stop.", "Okay."))), voice_engine="tones") as emu:
        conf = configure(tmp_path / "rtd.toml", emu.url, mic, out,
                         '[audio]\necho = "none"\nbarge_in_min_ms = 300\n[receivers.console]\n')
        d = run_rtd("run", "--config", str(conf))
        d.wait_for_line("shorter than audio.barge_in_min_ms", timeout=40)
        d.wait_for_line("assistant (interrupted): ", timeout=30)
        d.wait_for_line("assistant: Okay.", timeout=30)
        assert d.stop() == 0
    received = emu.received
    turn = received[0]["session"]["audio"]["input"]["turn_detection"]
    assert (turn["interrupt_response"], turn["create_response"]) == (False, False)
    committed = [e["item_id"] for e in emu.sent if e["type"] == "input_audio_buffer.committed"]
    assert len(committed) == 3
    deleted = [e["item_id"] for e in received if e["type"] == "conversation.item.delete"]
    assert deleted == [committed[1]]  # the cough, and nothing else
    assert [e["type"] for e in received].count("response.create") == 2  # story, "Stop."
    [truncate] = [e for e in received if e["type"] == "conversation.item.truncate"]
    story_ms = len(synthesize(STORY, "tones")) // 48
    assert 0 < truncate["audio_end_ms"] < story_ms
    assert not [e for e in emu.sent if e["type"] == "error"]
    assert "Bless you" not in d.output and "(cough)" not in d.output
    assert "user: Stop." in d.output


def input_event(code: int, value: int, kind: int = 1) -> bytes:
    """One kernel ``struct input_event`` (64-bit: timeval, type, code, value)."""
    return struct.pack("@llHHi", 1_700_000_000, 0, kind, code, value)


def test_push_to_talk_from_an_input_device_takes_manual_turns(run_rtd, tmp_path):
    device = tmp_path / "event0"
    os.mkfifo(device)
    # opened for reading and writing: rtd's reader never sees end of file between presses
    fd = os.open(device, os.O_RDWR | os.O_NONBLOCK)
    mic = write_wav(tmp_path / "mic.wav", speech(4.0))
    out = tmp_path / "speaker.wav"
    try:
        with Emulator(scenario=load_scenario(scenario(tmp_path, ("Lights on.", "Done."))),
                      voice_engine="tones") as emu:
            conf = configure(tmp_path / "rtd.toml", emu.url, mic, out,
                             f'[session]\nturn_detection = "none"\n[audio]\necho = "none"\n'
                             f'[senders.push_to_talk]\ndevice = "{device}"\n'
                             'key = "KEY_SPACE"\n')
            d = run_rtd("run", "--config", str(conf))
            d.wait_for_line("push to talk: hold KEY_SPACE", timeout=20)
            d.wait_for_line("session ready", timeout=20)
            os.write(fd, input_event(57, 1) + input_event(0, 0, kind=0))  # press, SYN
            emu.wait_for(lambda e: e["type"] == "input_audio_buffer.clear", timeout=10)
            d.wait_for_line("-> user_speaking", timeout=10)
            assert wait_until(lambda: sum(e.get("audio_bytes") or 0 for e in emu.received
                                          if e["type"] == "input_audio_buffer.append")
                              > RATE, timeout=10)  # half a second of speech at least
            os.write(fd, input_event(57, 2) + input_event(30, 1))  # repeat; another key
            os.write(fd, input_event(57, 0))  # release
            d.wait_for_line("assistant: Done.", timeout=30)
            types = [e["type"] for e in emu.received if e["type"] != "input_audio_buffer.append"]
            assert d.stop() == 0
    finally:
        os.close(fd)
    turn = types[types.index("input_audio_buffer.clear"):]
    assert turn[:3] == ["input_audio_buffer.clear", "input_audio_buffer.commit",
                        "response.create"]
    assert types.count("input_audio_buffer.commit") == 1  # the repeat and KEY_A did nothing
    assert "user: Lights on." in d.output
    assert not [e for e in emu.sent if e["type"] == "error"]
    states = re.findall(r"state (\w+) -> (\w+)", d.output)
    assert ("listening", "user_speaking") in states and ("user_speaking", "thinking") in states


def test_rtd_check_names_a_missing_push_to_talk_device(run_rtd, tmp_path):
    conf = tmp_path / "rtd.toml"
    conf.write_text(f'[provider]\nname = "custom"\nurl = "ws://127.0.0.1:9"\n'
                    f'[senders.push_to_talk]\ndevice = "{tmp_path}/nope"\n')
    d = run_rtd("check", "--config", str(conf))
    assert d.wait(timeout=30) == 78
    assert (f"senders.push_to_talk.device: {tmp_path}/nope does not exist; list the input "
            "devices with ls -l /dev/input/by-id/") in d.output
    assert "Traceback" not in d.output


def test_text_only_answers_play_nothing_and_are_still_transcribed(run_rtd, tmp_path, env):
    import subprocess
    import sys

    sock, out = tmp_path / "rtd.sock", tmp_path / "speaker.wav"
    with Emulator(voice_engine="tones") as emu:
        conf = write_config(tmp_path / "rtd.toml", emu.url, input_wav=write_wav(
            tmp_path / "mic.wav", quiet(0.2)), output_wav=out,
            extra=f'[session]\noutput = "text"\n[senders.socket]\npath = "{sock}"\n'
                  '[receivers.console]')
        d = run_rtd("run", "--config", str(conf))
        d.wait_for_line("session ready", timeout=20)
        assert wait_until(sock.exists, timeout=20)
        say = subprocess.run([sys.executable, "-m", "rtd", "say", "--socket", str(sock),
                              "Is the oven on?"], capture_output=True, text=True, env=env,
                             timeout=20)
        assert say.returncode == 0, say.stderr
        d.wait_for_line("assistant: I heard you.", timeout=20)
        assert d.stop() == 0
    session = emu.received[0]["session"]
    assert session["output_modalities"] == ["text"]
    assert not [e for e in emu.sent if e["type"] == "response.output_audio.delta"]
    assert not any(read_pcm(out))  # the speaker played silence only
    assert "you: Is the oven on?" in d.output


def test_typed_and_spoken_turns_share_one_spoken_conversation(run_rtd, tmp_path, env):
    import subprocess
    import sys

    sock, out, log = tmp_path / "rtd.sock", tmp_path / "speaker.wav", tmp_path / "t.jsonl"
    mic = write_wav(tmp_path / "mic.wav", quiet(0.5), speech(1.0))
    with Emulator(scenario=load_scenario(scenario(tmp_path, ("What time is it?", "Noon."),
                                                  ("", "Yes, it is on."))),
                  voice_engine="tones") as emu:
        conf = configure(tmp_path / "rtd.toml", emu.url, mic, out,
                         f'[audio]\necho = "none"\n[senders.socket]\npath = "{sock}"\n'
                         f'[receivers.transcript_log]\npath = "{log}"\n')
        d = run_rtd("run", "--config", str(conf))
        d.wait_for_line("assistant: Noon.", timeout=30)
        assert wait_until(sock.exists, timeout=20)
        say = subprocess.run([sys.executable, "-m", "rtd", "say", "--socket", str(sock),
                              "Is the oven on?"], capture_output=True, text=True, env=env,
                             timeout=20)
        assert say.returncode == 0, say.stderr
        d.wait_for_line("assistant: Yes, it is on.", timeout=30)
        assert wait_until(lambda: read_pcm(out).find(synthesize("Yes, it is on.", "tones"))
                          >= 0, timeout=20)  # the typed question was answered aloud
        assert d.stop() == 0
    assert emu.connections == 1
    rows = [(x["role"], x["text"]) for x in map(json.loads, log.read_text().splitlines())]
    assert rows == [("user", "What time is it?"), ("assistant", "Noon."),
                    ("user", "Is the oven on?"), ("assistant", "Yes, it is on.")]


def test_rtd_talk_start_and_stop_take_a_manual_turn_and_status_shows_the_state(
        run_rtd, tmp_path, env):
    import subprocess
    import sys

    mic = write_wav(tmp_path / "mic.wav", speech(3.0))
    out = tmp_path / "speaker.wav"

    def rtd(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "rtd", *args, "--config", str(conf)],
                              capture_output=True, text=True, env=env, timeout=20)

    with Emulator(scenario=load_scenario(scenario(tmp_path, ("Lights on.", "Done."))),
                  voice_engine="tones") as emu:
        conf = configure(tmp_path / "rtd.toml", emu.url, mic, out,
                         '[session]\nturn_detection = "none"\n[audio]\necho = "none"\n')
        d = run_rtd("run", "--config", str(conf))
        d.wait_for_line("session ready", timeout=20)
        assert rtd("talk", "start").returncode == 0
        d.wait_for_line("-> user_speaking", timeout=10)
        status = json.loads(rtd("status", "--json").stdout)
        assert status["state"] == "user_speaking"
        assert wait_until(lambda: sum(e.get("audio_bytes") or 0 for e in emu.received
                                      if e["type"] == "input_audio_buffer.append") > RATE,
                          timeout=10)
        assert rtd("talk", "stop").returncode == 0
        d.wait_for_line("assistant: Done.", timeout=30)
        d.wait_for_line("state speaking -> listening", timeout=20)
        assert json.loads(rtd("status", "--json").stdout)["state"] == "listening"
        assert d.stop() == 0
    types = [e["type"] for e in emu.received if e["type"] != "input_audio_buffer.append"]
    turn = types[types.index("input_audio_buffer.clear"):]
    assert turn[:3] == ["input_audio_buffer.clear", "input_audio_buffer.commit",
                        "response.create"]

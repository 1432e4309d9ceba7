"""rtd-wakeword on real speech: espeak-ng's voices saying the wake word, and saying other things.

The speech goes the way the microphone's does: 24 kHz blocks published on a real bus, taken by
the real sender actor (lossy subscription, resampling to 16 kHz) and handed to the sender's
hear(), where the real microWakeWord model listens. The end-to-end test through PulseAudio and
`rtd run` is in test_wakeword_run.py.
"""

from __future__ import annotations

import json
import shutil
import subprocess

import numpy as np
import pykka
import pytest

from rtd import config as cfg
from rtd import plugins
from rtd.actors.sender import SenderActor
from rtd.audio.resample import resample
from rtd.messages import InputAudio, Interrupt, Wake
from rtd.supervisor import Bus, Ping

RATE = 24000
BLOCK = 1200  # 50 ms, audio.input.block_ms's default
VOICES = ("en", "en-us", "en-gb", "en+m3", "en+f3")

pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None,
                                reason="espeak-ng is not installed (apt-get install espeak-ng)")


@pytest.fixture(scope="module")
def wakeword():
    import rtd_wakeword

    return rtd_wakeword


@pytest.fixture(autouse=True)
def _stop_actors():
    yield
    pykka.ActorRegistry.stop_all()


def speak(text: str, voice: str = "en") -> np.ndarray:
    """espeak-ng's speech at 24 kHz mono int16, as rtd's microphone delivers it."""
    wav = subprocess.run(["espeak-ng", "-v", voice, "--stdout", text], capture_output=True,
                         check=True, timeout=30).stdout
    # a canonical 44-byte RIFF header, then 22050 Hz mono int16
    assert wav[:4] == b"RIFF" and int.from_bytes(wav[24:28], "little") == 22050
    return resample(np.frombuffer(wav[44:], "<i2"), 22050, RATE)


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(RATE * seconds), np.int16)


class Listening:
    """The wakeword sender in its real actor on a real bus, and what it published."""

    def __init__(self, sender) -> None:
        self.sender = sender
        self.bus = Bus()
        self.seen: list[object] = []
        self.bus.observe(self.seen.append)
        self.bus.subscribe("senders.wakeword", SenderActor.receives(type(sender)), lossy=True)
        self.ref = SenderActor.start(self.bus, lambda n, e: None, sender)
        self.bus.attach("senders.wakeword", self.ref)
        self.ref.ask(Ping(), timeout=5)
        assert sender._ready.wait(10), "the model did not load"

    def play(self, samples: np.ndarray) -> None:
        """Publish as the microphone does, then wait until the actor heard all of it."""
        for i in range(0, len(samples), BLOCK):
            self.bus.publish(InputAudio(samples[i:i + BLOCK].tobytes()))
        self.ref.ask(Ping(), timeout=30)

    def of(self, kind: type) -> list:
        return [m for m in self.seen if isinstance(m, kind)]


@pytest.mark.parametrize("voice", VOICES)
def test_okay_nabu_opens_the_conversation(wakeword, voice):
    heard = Listening(wakeword.WakeWordSender(wakeword.WakeWordSettings()))
    heard.play(np.concatenate([silence(0.5), speak("okay nabu", voice), silence(1.0)]))
    assert heard.of(Wake) == [Wake("wakeword")]
    assert heard.of(Interrupt) == [Interrupt("sender")]  # it stops the assistant too
    # the wake word itself is not sent by default: only the microphone's own blocks were seen
    assert {m.source for m in heard.of(InputAudio)} == {"microphone"}


@pytest.mark.parametrize("text", ["what time is it", "turn on the kitchen lights",
                                  "okay, thank you", "set a timer for ten minutes"])
def test_ordinary_speech_does_not(wakeword, text):
    heard = Listening(wakeword.WakeWordSender(wakeword.WakeWordSettings()))
    heard.play(np.concatenate([silence(0.5), speak(text), silence(1.0)]))
    assert heard.of(Wake) == []


def test_interrupt_false_only_wakes(wakeword):
    heard = Listening(wakeword.WakeWordSender(wakeword.WakeWordSettings(interrupt=False)))
    heard.play(np.concatenate([silence(0.5), speak("okay nabu"), silence(1.0)]))
    assert heard.of(Wake) == [Wake("wakeword")] and heard.of(Interrupt) == []


@pytest.mark.parametrize(("refractory_s", "wakes"), [(10.0, 1), (1.0, 2)])
def test_the_refractory_period_is_one_wake_per_utterance(wakeword, refractory_s, wakes):
    settings = wakeword.WakeWordSettings(refractory_s=refractory_s)
    heard = Listening(wakeword.WakeWordSender(settings))
    said = speak("okay nabu")
    heard.play(np.concatenate([silence(0.5), said, silence(3.0), said, silence(1.0)]))
    assert len(heard.of(Wake)) == wakes


def test_send_wake_word_sends_the_two_seconds_before_it(wakeword):
    settings = wakeword.WakeWordSettings(send_wake_word=True)
    heard = Listening(wakeword.WakeWordSender(settings))
    said = speak("okay nabu")
    heard.play(np.concatenate([silence(3.0), said, silence(1.0)]))
    wake_at = next(i for i, m in enumerate(heard.seen) if isinstance(m, Wake))
    sent = [m for m in heard.seen[wake_at:] if isinstance(m, InputAudio)
            and m.source == "wakeword"]
    assert len(sent) == 1
    pre_roll = np.frombuffer(sent[0].pcm, "<i2")
    # two seconds at 24 kHz (to a block), and it holds speech, not the silence before it
    assert abs(len(pre_roll) - 2 * RATE) <= BLOCK
    assert np.abs(pre_roll.astype(np.int32)).max() > 1000


def test_the_shipped_names_are_pymicro_wakewords_models(wakeword):
    from pymicro_wakeword import Model

    assert sorted(wakeword.SHIPPED) == sorted(m.value for m in Model)
    for name in wakeword.SHIPPED:
        assert wakeword.WakeWordSender.check(wakeword.WakeWordSettings(model=name)) == []


def test_a_model_path_is_checked(wakeword, tmp_path):
    from rtd_wakeword.wakeword import model_config

    check = wakeword.WakeWordSender.check
    missing = tmp_path / "mine.json"
    assert check(wakeword.WakeWordSettings(model=str(missing))) == [
        f"model: {missing} does not exist"]
    missing.write_text("{not json")
    (problem,) = check(wakeword.WakeWordSettings(model=str(missing)))
    assert problem.startswith(f"model: {missing} is not a microWakeWord model's JSON")
    shipped = json.loads(model_config("hey_jarvis").read_text())
    missing.write_text(json.dumps(shipped))
    assert check(wakeword.WakeWordSettings(model=str(missing))) == [
        f"model: {tmp_path / shipped['model']}, named by {missing}, does not exist"]
    (tmp_path / shipped["model"]).write_bytes(
        (model_config("hey_jarvis").parent / shipped["model"]).read_bytes())
    assert check(wakeword.WakeWordSettings(model=str(missing))) == []
    # and a copied model is a model: it loads and listens
    sender = wakeword.WakeWordSender(wakeword.WakeWordSettings(model=str(missing)))
    sender.load()
    assert sender.wake_word == shipped["wake_word"]
    sender.stop()


@pytest.mark.parametrize(("table", "problem"), [
    ({"model": "hey_siri"}, "senders.wakeword: model: 'hey_siri' is neither a shipped model "
     "(okay_nabu, hey_jarvis, alexa, hey_mycroft) nor the path to a model's .json file "
     "(senders.wakeword is disabled)"),
    ({"refractory_s": -1}, "senders.wakeword.refractory_s: expected a value from 0.0 to 60.0, "
     "got -1.0 (senders.wakeword is disabled)"),
    ({"probability_cutoff": 2}, "senders.wakeword.probability_cutoff: expected a value from "
     "0.0 to 1.0, got 2.0 (senders.wakeword is disabled)"),
])
def test_a_bad_table_disables_the_sender_with_one_line(wakeword, table, problem):
    config = cfg.parse({"senders": {"wakeword": table}}, require_key=False,
                       registry=plugins.load())
    assert config.component_problems == (problem,)


def test_rtd_plugins_and_rtd_check(run_rtd, tmp_path):
    conf = tmp_path / "rtd.toml"
    conf.write_text('[provider]\nname = "custom"\nurl = "ws://127.0.0.1:9/v1/realtime"\n'
                    '[audio.input]\nbackend = "none"\n[audio.output]\nbackend = "none"\n'
                    f'[senders.wakeword]\nmodel = "{tmp_path / "gone.json"}"\n')
    d = run_rtd("check", "--config", str(conf))
    assert d.wait(timeout=30) == 78
    assert (f"senders.wakeword.model: {tmp_path / 'gone.json'} does not exist "
            "(senders.wakeword is disabled)") in d.output, d.output
    conf.write_text(conf.read_text().replace(str(tmp_path / "gone.json"), "alexa"))
    d = run_rtd("check", "--config", str(conf))
    assert d.wait(timeout=30) == 0, d.output
    d = run_rtd("plugins", "--config", str(conf))
    assert d.wait(timeout=30) == 0, d.output
    assert "wakeword (rtd-wakeword 0.1.0): loaded" in d.lines
    assert ["sender", "wakeword", "enabled"] in [line.split() for line in d.lines]


def test_a_model_that_cannot_load_fails_run_and_is_retried(wakeword, tmp_path):
    """run() raises (rtd restarts the sender with backoff); hear() meanwhile ignores audio."""
    from rtd.components import SenderContext

    bad = tmp_path / "bad.json"
    bad.write_text('{"model": "bad.tflite", "wake_word": "x", "micro": {}}')
    sender = wakeword.WakeWordSender(wakeword.WakeWordSettings(model=str(bad)))
    ctx = SenderContext("wakeword", lambda m: None)
    with pytest.raises((KeyError, OSError, ValueError)):
        sender.run(ctx)
    sender.hear(silence(0.1).tobytes(), ctx)  # no model: nothing happens, nothing raises
    assert not sender._ready.is_set() and sender.detections == 0

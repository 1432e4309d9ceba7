"""The `wakeword` sender: hears the microphone locally and opens the conversation on a wake word.

It is a sender that *hears* (``audio_rate = 16000``, see "Hearing the microphone" in rtd's
docs/plugins.md): rtd hands it every microphone block resampled to the 16 kHz microWakeWord
models are trained on, before anything is sent to the server and whether or not a
conversation is open. With ``[session] start = "on_demand"`` rtd keeps the server closed until
a sender wakes it, so the audio of the kitchen stays in the kitchen until the wake word.

The detector (pymicro-wakeword: a TensorFlow Lite streaming model fed 10 ms feature frames)
runs in hear(), on the sender actor's thread; run() only loads the model, so a model that
cannot load is a failed run(): logged, and retried with rtd's backoff.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rtd import setting
from rtd.components import Sender, SenderContext

logger = logging.getLogger(__name__)

RATE = 16000
"""Hz: what the models are trained on, and so what rtd resamples the microphone to."""
WIRE_RATE = 24000
"""Hz of what `SenderContext.send_audio` takes."""
SHIPPED = ("okay_nabu", "hey_jarvis", "alexa", "hey_mycroft")
"""The models in pymicro-wakeword's wheel (its `Model` enum), usable by name."""
PRE_ROLL_S = 2.0
"""Seconds of audio before a detection sent with ``send_wake_word``: a spoken wake word
(with its lead-in) fits."""


@dataclass(frozen=True)
class WakeWordSettings:
    """The ``[senders.wakeword]`` table."""

    model: str = setting("okay_nabu", "a shipped model (okay_nabu, hey_jarvis, alexa, "
                         "hey_mycroft) or the path to a microWakeWord model's JSON file")
    refractory_s: float = setting(2.0, "seconds after a detection during which the wake word "
                                  "is not heard again (one utterance, one wake)",
                                  min=0.0, max=60.0)
    send_wake_word: bool = setting(False, "send the wake word itself to the model too (the "
                                   "last 2 s before the detection); by default only what "
                                   "follows it is sent")
    interrupt: bool = setting(True, "the wake word said while the assistant speaks stops "
                              "it, as a new request would")
    probability_cutoff: float = setting(0.0, "detection threshold from 0 to 1; higher: fewer "
                                        "false wakes, more missed ones; 0: the model's own",
                                        min=0.0, max=1.0)

    def __post_init__(self) -> None:
        if self.model not in SHIPPED and not self.model.endswith(".json"):
            raise ValueError(f"model: {self.model!r} is neither a shipped model "
                             f"({', '.join(SHIPPED)}) nor the path to a model's .json file")


def model_config(model: str) -> Path:
    """The JSON file describing a model: a shipped one's inside pymicro-wakeword's package."""
    if model in SHIPPED:
        import importlib.util

        spec = importlib.util.find_spec("pymicro_wakeword")
        if spec is None or not spec.submodule_search_locations:
            raise FileNotFoundError("pymicro-wakeword is not installed "
                                    "(pip install pymicro-wakeword)")
        return Path(next(iter(spec.submodule_search_locations))) / "models" / f"{model}.json"
    return Path(model).expanduser()


class WakeWordSender(Sender):
    """Calls ``ctx.wake()`` when the configured wake word is heard (and interrupts)."""

    name = "wakeword"
    Settings = WakeWordSettings
    audio_rate = RATE

    def __init__(self, settings: WakeWordSettings | None = None) -> None:
        super().__init__(settings or WakeWordSettings())
        self.settings: WakeWordSettings
        self._ready = threading.Event()
        self._detector: Any = None
        self._features: Any = None
        self.wake_word = ""
        """The phrase, from the model's JSON ("Okay Nabu")."""
        self.detections = 0
        self._heard = 0
        """Samples heard so far: the clock of the refractory period (audio time, not wall)."""
        self._quiet_until = 0
        self._pre_roll: deque[bytes] = deque()
        self._pre_roll_samples = 0

    @classmethod
    def check(cls, settings: WakeWordSettings) -> list[str]:
        try:
            path = model_config(settings.model)
        except FileNotFoundError as exc:
            return [f"model: {exc}"]
        if not path.is_file():
            return [f"model: {path} does not exist"]
        try:
            config = json.loads(path.read_text(encoding="utf-8"))
            tflite = path.parent / config["model"]
            config["micro"]["probability_cutoff"]  # noqa: B018 - only its presence matters
        except (OSError, ValueError, KeyError, TypeError) as exc:
            return [f"model: {path} is not a microWakeWord model's JSON ({type(exc).__name__}: "
                    f"{exc}); expected the keys model, wake_word and micro"]
        if config.get("type", "micro") != "micro":
            return [f"model: {path} is a {config['type']!r} model; only microWakeWord "
                    "(\"micro\") models are supported"]
        if not tflite.is_file():
            return [f"model: {tflite}, named by {path}, does not exist"]
        return []

    def load(self) -> None:
        """Load the model and its feature front end (tens of milliseconds)."""
        from pymicro_wakeword import MicroWakeWord, MicroWakeWordFeatures

        path = model_config(self.settings.model)
        detector = MicroWakeWord.from_config(path)
        if self.settings.probability_cutoff > 0:
            detector.probability_cutoff = self.settings.probability_cutoff
        self.wake_word = detector.wake_word
        self._features = MicroWakeWordFeatures()
        self._detector = detector
        self._ready.set()
        logger.info("wakeword: listening for %r (%s, cutoff %.2f)", self.wake_word, path.name,
                    detector.probability_cutoff)

    def run(self, ctx: SenderContext) -> None:
        self.load()
        ctx.wait()

    def hear(self, pcm: bytes, ctx: SenderContext) -> None:
        if not self._ready.is_set():
            return  # run() has not loaded the model yet
        samples = len(pcm) // 2
        start = self._heard
        self._heard += samples
        if self.settings.send_wake_word:
            self._keep(pcm, samples)
        for features in self._features.process_streaming(pcm):
            # every frame goes through the model (its state streams on); a detection counts
            # only outside the refractory period, which starts at the block after a wake
            if self._detector.process_streaming(features) and start >= self._quiet_until:
                self._woken(ctx)

    def _keep(self, pcm: bytes, samples: int) -> None:
        self._pre_roll.append(pcm)
        self._pre_roll_samples += samples
        limit = int(PRE_ROLL_S * RATE)
        while self._pre_roll and self._pre_roll_samples - len(self._pre_roll[0]) // 2 >= limit:
            self._pre_roll_samples -= len(self._pre_roll.popleft()) // 2

    def _woken(self, ctx: SenderContext) -> None:
        self.detections += 1
        self._quiet_until = self._heard + int(self.settings.refractory_s * RATE)
        logger.info("wakeword: heard %r", self.wake_word)
        if self.settings.interrupt:
            ctx.interrupt()  # nothing to stop while asleep or listening: the session ignores it
        ctx.wake()
        if self.settings.send_wake_word and self._pre_roll:
            ctx.send_audio(to_wire(b"".join(self._pre_roll)))
            self._pre_roll.clear()
            self._pre_roll_samples = 0

    def stop(self) -> None:
        detector, self._detector = self._detector, None
        self._ready.clear()
        if detector is not None:
            detector.close()


def to_wire(pcm16k: bytes) -> bytes:
    """16 kHz mono int16 to the 24 kHz `send_audio` takes."""
    import numpy as np
    import soxr

    samples = np.frombuffer(pcm16k, "<i2").astype(np.float32) / 32768.0
    out = soxr.resample(samples, RATE, WIRE_RATE, quality="HQ")
    return np.clip(np.rint(out * 32768.0), -32768, 32767).astype("<i2").tobytes()

"""What the first-party plugins cost: CPU and memory of rtd-wakeword, rtd-mqtt and rtd-leds.

Each plugin is measured in a fresh interpreter of its own (so one's memory is not another's):
its resident memory before and after it is loaded and running, and its CPU time (user +
system, all threads) for its work: for the wake word, per second of microphone audio through
rtd's resampler and the model; for MQTT, per state change published to a real mosquitto and
per minute connected and idle; for the LEDs, per state change and per second of blinking
done by rtd itself. Printed beside a target; nothing is asserted.

    python bench/plugins.py [--seconds 60]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGETS = {
    "wakeword_ms_per_audio_s": 10.0,
    "wakeword_rss_mib": 40.0,
    "mqtt_us_per_event": 500.0,
    "mqtt_ms_per_idle_min": 20.0,
    "mqtt_rss_mib": 15.0,
    "leds_us_per_change": 1000.0,
    "leds_ms_per_blink_s": 10.0,
    "leds_rss_mib": 1.0,
}
"""On this machine (x86-64, 2 cores shared); a Pi 4 is about 4-5 times slower."""


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu() -> float:
    """Seconds of CPU of this process, every thread (paho's, the blinker's) included."""
    return time.process_time()


def plugin_path() -> Path:
    """The plugins findable by entry point, as the tests make them (tests/plugins)."""
    sys.path.insert(0, str(ROOT / "tests" / "plugins"))
    from plugin_tree import make_plugin_path

    folder = Path(tempfile.mkdtemp(prefix="rtd-bench-plugins-"))
    make_plugin_path(folder)
    return folder


def speech(seconds: float) -> bytes:
    """24 kHz microphone audio: espeak-ng's ordinary speech with pauses, repeated."""
    import numpy as np

    from rtd.audio.resample import resample

    wav = subprocess.run(["espeak-ng", "--stdout", "what time is it in the kitchen"],
                         capture_output=True, check=True, timeout=30).stdout
    said = resample(np.frombuffer(wav[44:], "<i2"), 22050, 24000)
    one = np.concatenate([said, np.zeros(24000, np.int16)])
    reps = int(seconds * 24000 / len(one)) + 1
    return np.tile(one, reps)[: int(seconds * 24000)].tobytes()


def bench_wakeword(seconds: float) -> dict[str, float]:
    from rtd.audio.resample import StreamResampler
    from rtd.components import SenderContext

    audio = speech(seconds)
    before = rss_mib()
    import rtd_wakeword

    sender = rtd_wakeword.WakeWordSender(rtd_wakeword.WakeWordSettings())
    sender.load()
    ctx = SenderContext("wakeword", lambda m: None)
    resampler = StreamResampler(24000, 16000)
    block = 2400  # 50 ms blocks, as the microphone's
    began = cpu()
    for i in range(0, len(audio), block):  # what the sender actor does per block
        sender.hear(resampler.process(audio[i:i + block]), ctx)
    used = cpu() - began
    began = cpu()
    for i in range(0, len(audio), block):  # of which rtd's resampling alone
        resampler.process(audio[i:i + block])
    resampling = cpu() - began
    return {"wakeword_ms_per_audio_s": used * 1000 / seconds,
            "wakeword_resample_ms_per_s": resampling * 1000 / seconds,
            "wakeword_rss_mib": rss_mib() - before, "wakeword_false_wakes": sender.detections}


def bench_mqtt(seconds: float) -> dict[str, float]:
    sys.path.insert(0, str(ROOT / "tests" / "plugins"))
    from broker import Broker

    from rtd.components import StateEvent

    folder = Path(tempfile.mkdtemp(prefix="rtd-bench-mqtt-"))
    broker = Broker(folder).start()
    try:
        before = rss_mib()
        import rtd_mqtt

        receiver = rtd_mqtt.MqttReceiver(rtd_mqtt.MqttSettings(port=broker.port,
                                                               device_id="bench"))
        receiver.start()
        assert receiver.hub.connected.wait(10), "no connection to mosquitto"
        states = ("listening", "user_speaking", "thinking", "speaking")
        n = 20000
        began = cpu()
        for i in range(n):
            receiver.receive(StateEvent(states[i % 4]))
        while receiver.hub.client._out_packet:  # until paho's thread wrote them all
            time.sleep(0.01)
        per_event = (cpu() - began) * 1e6 / n
        idle_s = min(seconds, 20.0)
        began = cpu()
        threading.Event().wait(idle_s)
        idle = (cpu() - began) * 1000 * 60 / idle_s
        rss = rss_mib() - before
        receiver.stop()
    finally:
        broker.stop()
    return {"mqtt_us_per_event": per_event, "mqtt_ms_per_idle_min": idle, "mqtt_rss_mib": rss}


def bench_leds(seconds: float) -> dict[str, float]:
    from rtd.components import StateEvent

    root = Path(tempfile.mkdtemp(prefix="rtd-bench-leds-"))
    led = root / "led0"
    led.mkdir()
    for f, v in (("trigger", "none [mmc0] timer"), ("brightness", "0"),
                 ("max_brightness", "255"), ("delay_on", "1"), ("delay_off", "1")):
        (led / f).write_text(v)
    before = rss_mib()
    import rtd_leds

    r = rtd_leds.LedsReceiver(rtd_leds.LedsSettings(root=str(root)))
    r.start()
    states = ("listening", "thinking", "speaking", "idle")
    n = 5000
    began = cpu()
    for i in range(n):
        r.receive(StateEvent(states[i % 4]))
    per_change = (cpu() - began) * 1e6 / n
    # rtd blinking itself (the service, where the timer's delay files are root's)
    for f in ("delay_on", "delay_off"):
        (led / f).unlink()
        (led / f).mkdir()
    r.stop()
    r = rtd_leds.LedsReceiver(rtd_leds.LedsSettings(root=str(root)))
    r.start()
    blink_s = min(seconds, 10.0)
    began = cpu()
    r.receive(StateEvent("thinking"))  # blink 100 100: 10 writes a second
    threading.Event().wait(blink_s)
    blink = (cpu() - began) * 1000 / blink_s
    r.stop()
    return {"leds_us_per_change": per_change, "leds_ms_per_blink_s": blink,
            "leds_rss_mib": rss_mib() - before}


BENCHES = {"wakeword": bench_wakeword, "mqtt": bench_mqtt, "leds": bench_leds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0,
                        help="seconds of audio for the wake word, of idling for MQTT")
    parser.add_argument("--one", choices=sorted(BENCHES), help=argparse.SUPPRESS)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    if args.one:
        print(json.dumps(BENCHES[args.one](args.seconds)))
        return
    folder = plugin_path()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(folder), str(ROOT)])}
    print(f"{'figure':28} {'measured':>10} {'target':>8}")
    for name in BENCHES:
        done = subprocess.run([sys.executable, __file__, "--one", name, "--seconds",
                               str(args.seconds)], capture_output=True, text=True, env=env,
                              timeout=600, check=False)
        if done.returncode != 0:
            print(f"{name}: failed\n{done.stderr}")
            continue
        for key, value in json.loads(done.stdout.splitlines()[-1]).items():
            target = TARGETS.get(key)
            shown = f"{target:8.1f}" if target is not None else f"{'':>8}"
            print(f"{key:28} {value:10.2f} {shown}")


if __name__ == "__main__":
    main()

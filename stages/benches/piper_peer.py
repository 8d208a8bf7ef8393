"""Piper's own runtime (the `piper-tts` Python package) on the same voice and sentences,
for `tts_bench`. Usage: python piper_peer.py MODEL.onnx THREADS SENTENCES.txt
Prints one JSON object: audio seconds, synthesis seconds, time to first audio."""

import json
import sys
import time
from pathlib import Path

import onnxruntime
from piper import PiperVoice
from piper.config import PiperConfig


def main() -> None:
    model, threads, sentences = Path(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3])
    lines = [l.strip() for l in sentences.read_text().splitlines() if l.strip()]
    opts = onnxruntime.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    t0 = time.perf_counter()
    session = onnxruntime.InferenceSession(str(model), sess_options=opts, providers=["CPUExecutionProvider"])
    config = PiperConfig.from_dict(json.loads(Path(str(model) + ".json").read_text()))
    voice = PiperVoice(session=session, config=config)
    load_s = time.perf_counter() - t0
    # Warm-up (first run allocates).
    for _ in voice.synthesize(lines[0]):
        pass
    audio_s = synth_s = 0.0
    first = []
    for line in lines:
        start = time.perf_counter()
        got_first = False
        for chunk in voice.synthesize(line):
            if not got_first:
                first.append(time.perf_counter() - start)
                got_first = True
            audio_s += len(chunk.audio_float_array) / chunk.sample_rate
        synth_s += time.perf_counter() - start
    first.sort()
    print(json.dumps({
        "engine": "piper-tts (python) " + onnxruntime.__version__,
        "load_s": load_s, "audio_s": audio_s, "synth_s": synth_s,
        "rtf": synth_s / audio_s, "first_audio_median_s": first[len(first) // 2],
    }))


if __name__ == "__main__":
    main()

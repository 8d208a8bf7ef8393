"""Piper's own runtime (the `piper-tts` Python package) on the same voice and sentences,
for `tts_bench`. Usage: python piper_peer.py MODEL.onnx THREADS SENTENCES.txt ROUNDS LONG_SENTENCE
Prints one JSON object: audio seconds, synthesis seconds (best round), median time to
first audio per sentence, and time to first audio for one long sentence."""

import json
import sys
import time
from pathlib import Path

import onnxruntime
from piper import PiperVoice
from piper.config import PiperConfig


def main() -> None:
    model, threads, sentences = Path(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3])
    rounds, long_sentence = int(sys.argv[4]), sys.argv[5]
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
    best = None
    for _ in range(rounds):
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
        if best is None or synth_s < best[1]:
            best = (audio_s, synth_s, first)
    audio_s, synth_s, first = best
    long_first = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _chunk in voice.synthesize(long_sentence):
            long_first.append(time.perf_counter() - start)
            break
    first.sort()
    print(json.dumps({
        "engine": "piper-tts (python) " + onnxruntime.__version__,
        "load_s": load_s, "audio_s": audio_s, "synth_s": synth_s,
        "rtf": synth_s / audio_s, "first_audio_median_s": first[len(first) // 2],
        "first_audio_long_s": min(long_first),
    }))


if __name__ == "__main__":
    main()

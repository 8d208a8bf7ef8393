#!/bin/bash
# The GPU device check, run on the device from the repository root after the chunks made by
# pack.sh were copied to /tmp/rv (earlier calls on the same warm machine) and this call
# carried the last one. Logs and reports go to /tmp/rv-out, packed into $OUT/results.tgz.
set -u
D=/tmp/rv
RES=/tmp/rv-out
mkdir -p "$D" "$RES" "${OUT:=/tmp/rv-result}"
cp .device/gpu/rv-*.part-* "$D/" 2>/dev/null
cd "$D"
ls -la "$D"
for part in data bin; do
  [ -e "$D/unpacked-$part" ] && continue
  cat rv-$part.part-* | python3 -c 'import lzma,sys,shutil; shutil.copyfileobj(lzma.open(sys.stdin.buffer), sys.stdout.buffer)' | tar -xf - \
    && touch "$D/unpacked-$part" || { echo "unpacking $part failed"; exit 1; }
done
export LD_LIBRARY_PATH=$D/rv/lib:/usr/local/nvidia/lib64:/usr/local/cuda-13.0/targets/x86_64-linux/lib:/usr/local/cuda/lib64
export REVOICE_MODELS=$D/rv/models ESPEAK_DATA_PATH=$D/rv/lib REVOICE_VOICES=$D/rv/voices
B=$D/rv/bin F=$D/rv/files A=$D/rv/audio
nvidia-smi --query-gpu=name,driver_version,memory.used,memory.total --format=csv
nproc; grep -m1 'model name' /proc/cpuinfo
echo "== missing libraries"; ldd $B/revoice | grep 'not found'

# One revoice run: NAME, then revoice's arguments. Samples device memory every 50 ms.
run() {
  local name=$1; shift
  nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 50 > "$RES/mem-$name.csv" 2>/dev/null &
  local sampler=$!
  local t0=$(date +%s.%N)
  timeout 150 $B/revoice -v "$@" --report "$RES/$name.json" > /dev/null 2> "$RES/$name.log"
  local rc=$?
  local t1=$(date +%s.%N)
  kill $sampler 2>/dev/null; wait $sampler 2>/dev/null
  local peak=$(sort -n "$RES/mem-$name.csv" | tail -1)
  local rtf=$(python3 -c "import json;r=json.load(open('$RES/$name.json'))[0];print('%.3f s for %.1f s, RTF %.4f'%(r['elapsed_seconds'],r['seconds'],r['real_time_factor']))" 2>/dev/null)
  echo "$name: rc $rc, wall $(python3 -c "print('%.2f'%($t1-$t0))") s, $rtf, device memory peak ${peak} MiB"
  grep -E "WARN|ERROR|model runs on|whisper_backend_init_gpu|using device" "$RES/$name.log" | cut -c1-300 | head -6
  sed -n '/GPU memory on/,$p' "$RES/$name.log" | head -6
}
W="--whisper $F/ggml-tiny.en-q8_0.bin"
L="--style casual --llm $F/SmolLM2-135M-Instruct.Q4_1.gguf"
echo "== end to end, the same binary on the GPU (default budget, then one too small for the LLM) and on the CPU (--vram 0)"
run gpu-warmup file $A/en_jfk_inaugural.wav -o /tmp/o0.wav $W $L
run gpu-jfk-llm file $A/en_jfk_inaugural.wav -o /tmp/o1.wav $W $L
run cpu-jfk-llm --vram 0 file $A/en_jfk_inaugural.wav -o /tmp/o2.wav $W $L
run gpu-ami-llm file $A/en_ami_meeting_excerpt_4spk.wav -o /tmp/o3.wav $W $L
run cpu-ami-llm --vram 0 file $A/en_ami_meeting_excerpt_4spk.wav -o /tmp/o4.wav $W $L
run gpu-ami-llm-small --vram 300MiB file $A/en_ami_meeting_excerpt_4spk.wav -o /tmp/o5.wav $W $L
if [ "${FULL:-}" = 1 ]; then
  echo "== identity rewriter (Whisper and the voice only)"
  run gpu-ami file $A/en_ami_meeting_excerpt_4spk.wav -o /tmp/o6.wav $W
  run cpu-ami --vram 0 file $A/en_ami_meeting_excerpt_4spk.wav -o /tmp/o7.wav $W
  echo "== a budget smaller than Whisper and the LLM together (both on the GPU with --features cuda)"
  run gpu-ami-llm-swap --vram 700MiB file $A/en_ami_meeting_excerpt_4spk.wav -o /tmp/o8.wav $W $L
fi
echo "== kernels against their CPU twins, arbiter on real device memory"
timeout 90 $B/kernels-device-check > "$RES/kernels.txt" 2>&1; echo "exit $?"
grep -E 'SUMMARY|FAIL|max rel' "$RES/kernels.txt" | tail -8

python3 - "$RES" <<'PY'
import json, sys, glob, os
out = sys.argv[1]
for f in sorted(glob.glob(out + '/*.json')):
    r = json.load(open(f))[0]
    texts = ' | '.join((u.get('new_text') or '')[:60] for u in r.get('utterances', [])[:3])
    print(os.path.basename(f), 'RTF %.4f' % r['real_time_factor'], [(s['name'], round(s['busy_seconds'], 2)) for s in r['stages'] if s['busy_seconds'] > 0.05], texts)
PY
tar -C "$RES" -czf "$OUT/results.tgz" .
ls -la "$OUT"

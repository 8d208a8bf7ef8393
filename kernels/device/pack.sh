#!/bin/bash
# Packs what the GPU device check needs into chunks a device call can carry (< 64 MiB each):
# the `cuda` build's revoice and kernels-device-check (stripped), the shared libraries they
# need beyond glibc and CUDA, espeak-ng's data, the models (small ones) and two recordings.
# Usage: kernels/device/pack.sh OUT_DIR   (CARGO_TARGET_DIR: the cuda build's target dir)
set -euo pipefail
T=${CARGO_TARGET_DIR:-/var/cache/revoice/target-cuda}/release
OUT=${1:?usage: pack.sh OUT_DIR}
M=${REVOICE_MODELS:-$HOME/.cache/revoice/models}
AUDIO=${AUDIO:-/work/shared/audio}
S=$(mktemp -d)
trap 'rm -rf "$S"' EXIT
mkdir -p "$S/rv/bin" "$S/rv/lib" "$S/rv/models" "$S/rv/files" "$S/rv/audio"
if [[ " ${WHAT:-data bin} " == *" bin "* ]]; then
  cp "$T/revoice" "$T/examples/kernels-device-check" "$S/rv/bin/"
  strip "$S/rv/bin/"*
fi
# Libraries beyond glibc, libstdc++ and CUDA (the device has newer ones of those).
ldd "${LDD_BINARY:-$T/revoice}" | awk '/=> \//{print $3}' \
  | grep -v -E '/(libc|libm|libgcc_s|libstdc\+\+|ld-linux-x86-64|libpthread|libdl|librt|libcuda|libcudart|libcublas|libcublasLt|libcurand|libnvrtc)\.so' \
  | xargs -r -I{} cp -L {} "$S/rv/lib/"
cp -r /usr/lib/x86_64-linux-gnu/espeak-ng-data "$S/rv/lib/"
# The model cache entries revoice fetches by name (kept with their manifests and stamps).
for m in onnxruntime silero-vad piper-en_US-joe-medium; do cp -a "$M/$m" "$S/rv/models/"; done
# Models given by path: Whisper tiny.en Q8_0 and SmolLM2-135M (Q4_1, re-quantized to Q8_0 at load).
cp "$M/whisper-tiny.en/ggml-tiny.en-q8_0.bin" "$M/smollm2-135m-instruct-original/SmolLM2-135M-Instruct.Q4_1.gguf" "$S/rv/files/"
cp "$AUDIO/en_jfk_inaugural.wav" "$AUDIO/en_ami_meeting_excerpt_4spk.wav" "$S/rv/audio/"
du -sh "$S/rv"/*
cp -r "$(dirname "$0")/../../voices" "$S/rv/voices"
du -sh "$S/rv"/*
mkdir -p "$OUT"
rm -f "$OUT"/rv-*.part-*
# Two archives, so the data can travel while the binaries are still building.
what=${WHAT:-data bin}
for part in $what; do
  case $part in
    data) tar -C "$S" -cf - --exclude=rv/bin rv ;;
    bin) tar -C "$S" -cf - rv/bin ;;
  esac | xz -T2 -1 | split -b 58M -d - "$OUT/rv-$part.part-"
done
ls -la "$OUT"

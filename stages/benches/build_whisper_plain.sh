#!/bin/sh
# Build the whisper.cpp peer for stt_bench against the static whisper.cpp libraries that
# whisper-rs-sys built for this workspace (same source, same flags as revoice's Whisper; OpenMP
# threads, as whisper.cpp's own CMake build gives its CLI by default).
# usage: stages/benches/build_whisper_plain.sh [OUT_DIR]   (default /var/cache/revoice/whisper-cli)
set -eu
target="${CARGO_TARGET_DIR:-target}/release/build"
# The newest build (an older one may be left from other features).
out_dir=$(ls -td "$target"/whisper-rs-sys-*/out 2>/dev/null | while read -r d; do [ -f "$d/lib/libwhisper.a" ] && echo "$d"; done | head -n 1)
[ -n "$out_dir" ] || { echo "no whisper-rs-sys build under $target: run cargo build --release first" >&2; exit 1; }
dest="${1:-/var/cache/revoice/whisper-cli}"
mkdir -p "$dest"
here=$(dirname "$0")
cc -O2 -o "$dest/whisper_plain" "$here/whisper_plain.c" -I"$out_dir/include" -I"$out_dir/whisper.cpp/ggml/include" \
    "$out_dir/lib/libwhisper.a" "$out_dir/lib/libggml.a" "$out_dir/lib/libggml-cpu.a" "$out_dir/lib/libggml-base.a" \
    -lstdc++ -lm -lpthread -fopenmp
echo "$dest/whisper_plain"
